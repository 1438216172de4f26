/**
 * rc.conf edits: set or remove shell assignments (name="value"), keeping every other line.
 * Values are quoted for sh; a value with a quote, backslash, $ or newline is refused.
 */
export class RcConfError extends Error {}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function assignmentName(line: string): string | undefined {
  return /^\s*([A-Za-z_][A-Za-z0-9_]*)=/.exec(line)?.[1];
}

/** rc.conf without the assignments whose names `drop` matches. */
export function rcConfWithout(text: string, drop: (name: string) => boolean): string {
  return text
    .split('\n')
    .filter((line) => {
      const name = assignmentName(line);
      return name === undefined || !drop(name);
    })
    .join('\n');
}

/** The text without its final newlines (not /\n*$/: quadratic on a long run of newlines). */
function withoutFinalNewlines(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === '\n') end--;
  return text.slice(0, end);
}

/** rc.conf with `values` set: existing assignments of those names are removed, new ones appended in order. */
export function rcConfWith(text: string, values: ReadonlyArray<readonly [string, string]>): string {
  for (const [name, value] of values) {
    if (!NAME.test(name)) throw new RcConfError(`rc.conf variable name ${name} is not valid`);
    if (/["\\$`\n]/.test(value))
      throw new RcConfError(`rc.conf value for ${name} contains a quote, backslash, $ or newline`);
  }
  const names = new Set(values.map(([n]) => n));
  const kept = withoutFinalNewlines(rcConfWithout(text, (n) => names.has(n)));
  const added = values.map(([n, v]) => `${n}="${v}"`).join('\n');
  if (added === '') return kept === '' ? '' : `${kept}\n`;
  return kept === '' ? `${added}\n` : `${kept}\n${added}\n`;
}

/** The value of the last assignment of `name`, unquoted. */
export function rcConfValue(text: string, name: string): string | undefined {
  let value: string | undefined;
  for (const line of text.split('\n')) {
    if (assignmentName(line) === name) value = firstWord(line.slice(line.indexOf('=') + 1).trim());
  }
  return value;
}

/**
 * The value as sh reads it, for the quoting rcConfWith writes: a quoted string up to its
 * closing quote (a '#' inside is not a comment), or a bare word up to a blank (scanned,
 * not matched with a regular expression: no backtracking over long blank runs).
 */
function firstWord(raw: string): string {
  const quote = raw[0];
  if (quote === '"' || quote === "'") {
    const end = raw.indexOf(quote, 1);
    return end < 0 ? raw.slice(1) : raw.slice(1, end);
  }
  const blank = raw.search(/\s/);
  return blank < 0 ? raw : raw.slice(0, blank);
}
