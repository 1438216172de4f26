/**
 * What a terminal shows after some output: carriage return, erase to the end of the line
 * (ESC [ K) and newline applied; other escape sequences dropped. Enough for the terminal
 * view's output.
 */
export function screenLines(text: string): string[] {
  const lines: string[] = [''];
  let col = 0;
  for (let i = 0; i < text.length; i++) {
    const row = lines.length - 1;
    const line = lines[row] ?? '';
    const ch = text[i] ?? '';
    if (ch === '\x1b') {
      const m = /^\x1b\[[0-9;?]*([A-Za-z])/.exec(text.slice(i, i + 16));
      if (m?.[1] === 'K') lines[row] = line.slice(0, col);
      i += (m?.[0].length ?? 1) - 1;
    } else if (ch === '\r') col = 0;
    else if (ch === '\n') {
      lines.push('');
      col = 0;
    } else {
      lines[row] = line.slice(0, col).padEnd(col) + ch + line.slice(col + 1);
      col += 1;
    }
  }
  if (lines.at(-1) === '') lines.pop();
  return lines;
}
