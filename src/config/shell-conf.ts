/**
 * Parser for shell-style configuration files (/etc/snf-image/snf-image.conf and the
 * variant files): `KEY=VALUE` lines, optional `export`, `#` comments, single quotes
 * (literal), double quotes (with \" \\ \$ \` escapes and ${VAR} expansion), backslash
 * escapes and $VAR expansion outside quotes. Nothing is executed: command substitution
 * and other shell syntax are refused with the file and line named.
 */
import { UserError } from '../util/errors.ts';

export interface ConfEntry {
  key: string;
  value: string;
  line: number;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parseShellConf(
  text: string,
  file: string,
  lookup: (name: string) => string | undefined = () => undefined,
): ConfEntry[] {
  const entries: ConfEntry[] = [];
  const defined = new Map<string, string>();
  const resolve = (name: string) => defined.get(name) ?? lookup(name) ?? '';
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    // Join backslash-newline continuations (parts joined once: slicing the growing line each time is quadratic).
    const parts: string[] = [];
    let part = lines[i] ?? '';
    while (part.endsWith('\\') && !part.endsWith('\\\\') && i + 1 < lines.length) {
      parts.push(part.slice(0, -1));
      part = lines[++i] ?? '';
    }
    parts.push(part);
    const line = parts.join('');
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const body = trimmed.startsWith('export ') ? trimmed.slice(7).trimStart() : trimmed;
    const eq = body.indexOf('=');
    const where = `${file}:${lineNo}`;
    if (eq <= 0) throw new UserError(`${where}: expected KEY=VALUE`);
    const key = body.slice(0, eq);
    if (!KEY.test(key)) throw new UserError(`${where}: '${key}' is not a valid variable name`);
    const value = parseValue(body.slice(eq + 1), where, resolve);
    defined.set(key, value);
    entries.push({ key, value, line: lineNo });
  }
  return entries;
}

function parseValue(raw: string, where: string, resolve: (name: string) => string): string {
  let out = '';
  let i = 0;
  const fail = (why: string): never => {
    throw new UserError(`${where}: ${why}`);
  };
  const expand = (): string => {
    // At raw[i] === '$'
    const next = raw[i + 1];
    if (next === '(' || next === '`') fail('command substitution is not supported');
    if (next === '{') {
      const end = raw.indexOf('}', i + 2);
      if (end < 0) fail('unterminated ${');
      const name = raw.slice(i + 2, end);
      if (!KEY.test(name)) fail(`unsupported expansion \${${name}}`);
      i = end + 1;
      return resolve(name);
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(raw.slice(i + 1));
    if (!m) {
      i += 1;
      return '$';
    }
    i += 1 + m[0].length;
    return resolve(m[0]);
  };
  while (i < raw.length) {
    const c = raw[i] as string;
    if (c === "'") {
      const end = raw.indexOf("'", i + 1);
      if (end < 0) fail('unterminated single quote');
      out += raw.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i += 1;
      let closed = false;
      while (i < raw.length) {
        const d = raw[i] as string;
        if (d === '"') {
          closed = true;
          i += 1;
          break;
        }
        if (d === '\\' && i + 1 < raw.length && '"\\$`'.includes(raw[i + 1] as string)) {
          out += raw[i + 1];
          i += 2;
        } else if (d === '$') {
          out += expand();
        } else if (d === '`') {
          fail('command substitution is not supported');
        } else {
          out += d;
          i += 1;
        }
      }
      if (!closed) fail('unterminated double quote');
    } else if (c === '\\') {
      out += raw[i + 1] ?? '';
      i += 2;
    } else if (c === '$') {
      out += expand();
    } else if (c === '`') {
      fail('command substitution is not supported');
    } else if (c === '#' && (i === 0 || /\s/.test(raw[i - 1] as string))) {
      break;
    } else if (/\s/.test(c)) {
      // Unquoted whitespace ends the value; anything after it but a comment is a command.
      const rest = raw.slice(i).trim();
      if (rest !== '' && !rest.startsWith('#')) fail('unquoted whitespace in value (quote the value)');
      break;
    } else if (';&|<>()'.includes(c)) {
      fail(`unsupported shell syntax '${c}' (quote the value)`);
    } else {
      out += c;
      i += 1;
    }
  }
  return out;
}
