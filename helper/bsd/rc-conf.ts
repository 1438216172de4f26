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
  return text.split('\n').filter((line) => {
    const name = assignmentName(line);
    return name === undefined || !drop(name);
  }).join('\n');
}

/** rc.conf with `values` set: existing assignments of those names are removed, new ones appended in order. */
export function rcConfWith(text: string, values: ReadonlyArray<readonly [string, string]>): string {
  for (const [name, value] of values) {
    if (!NAME.test(name)) throw new RcConfError(`rc.conf variable name ${name} is not valid`);
    if (/["\\$`\n]/.test(value)) throw new RcConfError(`rc.conf value for ${name} contains a quote, backslash, $ or newline`);
  }
  const names = new Set(values.map(([n]) => n));
  const kept = rcConfWithout(text, (n) => names.has(n)).replace(/\n*$/, '');
  const added = values.map(([n, v]) => `${n}="${v}"`).join('\n');
  if (added === '') return kept === '' ? '' : `${kept}\n`;
  return kept === '' ? `${added}\n` : `${kept}\n${added}\n`;
}

/** The value of the last assignment of `name`, unquoted. */
export function rcConfValue(text: string, name: string): string | undefined {
  let value: string | undefined;
  for (const line of text.split('\n')) {
    if (assignmentName(line) !== name) continue;
    const raw = line.slice(line.indexOf('=') + 1).trim().replace(/\s+#.*$/, '');
    value = raw.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return value;
}
