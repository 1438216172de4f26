/**
 * Windows registry hive files read and written with the hivex tools (hivexget for reading,
 * hivexsh -w for writing). Values keep their type; writing one value keeps the key's other
 * values (hivexsh's setval replaces them all, so they are read first and written back).
 */
import { run, TaskError } from '../exec.ts';

export type RegistryValue =
  | { type: 'string'; value: string }
  | { type: 'dword'; value: number }
  | { type: 'raw'; regType: number; bytes: Buffer };

/** Splits `\A\B` into its key names; the root is `\`. */
function keyParts(key: string): string[] {
  return key.split('\\').filter(Boolean);
}

function checkName(name: string, what: string): void {
  if (/[\r\n]/.test(name) || name === '') throw new TaskError(`registry ${what} '${name}' cannot be written`);
}

/** Parses one line of hivexget's regedit-style listing: "name"=value. */
export function parseRegLine(line: string): [string, RegistryValue] | undefined {
  const m = /^(?:"((?:[^"\\]|\\.)*)"|@)=(.*)$/.exec(line);
  if (!m) return undefined;
  const name = m[1] === undefined ? '@' : m[1].replace(/\\(.)/g, '$1');
  const raw = m[2] as string;
  if (raw.startsWith('"'))
    return [name, { type: 'string', value: raw.slice(1, raw.endsWith('"') ? -1 : undefined).replace(/\\(.)/g, '$1') }];
  const dword = /^dword:([0-9a-fA-F]{8})$/.exec(raw);
  if (dword) return [name, { type: 'dword', value: parseInt(dword[1] as string, 16) }];
  const hex = /^hex(?:\(([0-9a-fA-F]+)\))?:(.*)$/.exec(raw);
  if (hex) {
    const bytes = Buffer.from(
      (hex[2] as string)
        .split(',')
        .filter(Boolean)
        .map((b) => parseInt(b, 16)),
    );
    return [name, { type: 'raw', regType: hex[1] === undefined ? 3 : parseInt(hex[1], 16), bytes }];
  }
  return undefined;
}

/** All values of a key, or undefined when the key does not exist. */
export async function readKey(hive: string, key: string): Promise<Map<string, RegistryValue> | undefined> {
  const r = await run('hivexget', [hive, `\\${keyParts(key).join('\\')}`], { allowFailure: true });
  if (r.code !== 0) {
    if (/not found/.test(r.stderr)) return undefined;
    throw new TaskError(
      `cannot read the registry hive ${hive.split('/').pop() ?? hive}: ${r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`}`,
    );
  }
  const values = new Map<string, RegistryValue>();
  for (const line of r.stdout.split('\n')) {
    const parsed = parseRegLine(line.trim());
    if (parsed) values.set(parsed[0].toLowerCase() === '@' ? '@' : parsed[0], parsed[1]);
  }
  return values;
}

function lookup(values: Map<string, RegistryValue> | undefined, name: string): RegistryValue | undefined {
  if (!values) return undefined;
  for (const [k, v] of values) if (k.toLowerCase() === name.toLowerCase()) return v;
  return undefined;
}

/** A REG_SZ / REG_EXPAND_SZ value as text, or undefined. */
export async function readString(hive: string, key: string, name: string): Promise<string | undefined> {
  const v = lookup(await readKey(hive, key), name);
  if (!v) return undefined;
  if (v.type === 'string') return v.value;
  if (v.type === 'raw' && (v.regType === 1 || v.regType === 2)) return v.bytes.toString('utf16le').replace(/\0+$/, '');
  return undefined;
}

export async function readDword(hive: string, key: string, name: string): Promise<number | undefined> {
  const v = lookup(await readKey(hive, key), name);
  if (v?.type === 'dword') return v.value;
  if (v?.type === 'raw' && v.regType === 4 && v.bytes.length === 4) return v.bytes.readUInt32LE(0);
  return undefined;
}

/** Names of the subkeys of a key (empty when it has none or does not exist). */
export async function listSubkeys(hive: string, key: string): Promise<string[]> {
  const parts = keyParts(key);
  const r = await run('hivexsh', [hive], { input: `cd \\${parts.join('\\')}\nls\n`, allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

function setvalLine(value: RegistryValue): string {
  if (value.type === 'dword') return `dword:${value.value}`;
  if (value.type === 'string') {
    // hivexsh takes 7-bit strings only; anything else goes as UTF-16LE bytes.
    if (/^[\x20-\x7e]*$/.test(value.value)) return `string:${value.value}`;
    return `hex:1:${[...Buffer.from(`${value.value}\0`, 'utf16le')].map((b) => b.toString(16).padStart(2, '0')).join(',')}`;
  }
  return `hex:${value.regType}:${[...value.bytes].map((b) => b.toString(16).padStart(2, '0')).join(',')}`;
}

/**
 * Sets values of a key (creating the key and its parents when missing), keeping the
 * key's other values.
 */
export async function writeValues(
  hive: string,
  key: string,
  changes: Readonly<Record<string, RegistryValue>>,
): Promise<void> {
  const parts = keyParts(key);
  const script: string[] = [];
  const existing: string[] = [];
  for (const part of parts) {
    checkName(part, 'key');
    const present = (await listSubkeys(hive, existing.length ? `\\${existing.join('\\')}` : '\\')).some(
      (k) => k.toLowerCase() === part.toLowerCase(),
    );
    if (!present) script.push(`cd \\${existing.join('\\')}`, `add ${part}`);
    existing.push(part);
  }
  const values = (await readKey(hive, key)) ?? new Map<string, RegistryValue>();
  for (const [name, value] of Object.entries(changes)) {
    checkName(name, 'value name');
    for (const k of [...values.keys()]) if (k.toLowerCase() === name.toLowerCase()) values.delete(k);
    values.set(name, value);
  }
  script.push(`cd \\${parts.join('\\')}`, `setval ${values.size}`);
  for (const [name, value] of values) script.push(name, setvalLine(value));
  script.push('commit', '');
  const r = await run('hivexsh', ['-w', hive], { input: script.join('\n'), allowFailure: true });
  if (r.code !== 0)
    throw new TaskError(
      `cannot write ${key} in the registry hive ${hive.split('/').pop() ?? hive}: ${r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`}`,
    );
}

/** Deletes one value of a key when present. */
export async function deleteValue(hive: string, key: string, name: string): Promise<void> {
  const values = await readKey(hive, key);
  if (!values) return;
  const rest = new Map([...values].filter(([k]) => k.toLowerCase() !== name.toLowerCase()));
  if (rest.size === values.size) return;
  const script = [`cd \\${keyParts(key).join('\\')}`, `setval ${rest.size}`];
  for (const [k, v] of rest) script.push(k, setvalLine(v));
  script.push('commit', '');
  await run('hivexsh', ['-w', hive], { input: script.join('\n') });
}
