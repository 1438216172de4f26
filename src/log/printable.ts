/**
 * Text relayed from the helper VM (console lines, monitor events, the result line) as the
 * log and the progress monitor may show it: terminal escape sequences (colours, cursor
 * moves, window titles) removed, every other control character, lone surrogate and
 * bidirectional override written as a visible escape (\x1b, \u{202e}); printable UTF-8 kept.
 */

/** CSI (ESC [ or 0x9b), OSC (ESC ] ... BEL or ST) and two-character ESC sequences. */
const ESCAPE_SEQUENCE =
  /(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[@-Z\\-_]/g;
const UNPRINTABLE = /[\p{Cc}\p{Cs}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

function escapeOne(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

export function printable(text: string): string {
  return text.replace(ESCAPE_SEQUENCE, '').replace(UNPRINTABLE, escapeOne);
}
