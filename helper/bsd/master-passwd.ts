/**
 * ChangePassword for the BSDs: the hash goes into /etc/master.passwd (field 2, with the
 * change field 6 reset to 0), the stale spwd.db is removed, and the password databases are
 * rebuilt at first boot by pwd_mkdb (the Berkeley DB files cannot be written by the helper).
 */
import type { BsdFamily } from './partition-types.ts';

export class MasterPasswdError extends Error {}

/**
 * Each family's default PASSWD_HASHING_METHOD: FreeBSD sha512 ($6$), OpenBSD blowfish
 * ($2b$). NetBSD's upstream default is sha1 ($sha1$), which mkpasswd cannot make; NetBSD
 * verifies blowfish ($2a$), so that is its default here.
 */
export const DEFAULT_HASH_METHOD: Readonly<Record<BsdFamily, string>> = {
  freebsd: 'sha512',
  openbsd: 'blowfish',
  netbsd: 'blowfish',
};

/** mkpasswd --method per family and PASSWD_HASHING_METHOD: NetBSD's bcrypt reads $2a$ only. */
export function mkpasswdMethod(family: BsdFamily, method: string): string {
  const table: Readonly<Record<string, string>> = {
    md5: 'md5crypt',
    sha256: 'sha256crypt',
    sha512: 'sha512crypt',
    blowfish: family === 'netbsd' ? 'bcrypt-a' : 'bcrypt',
  };
  const tool = table[method];
  if (!tool)
    throw new MasterPasswdError(
      `PASSWD_HASHING_METHOD ${method} is not supported for ${family} (md5, sha256, sha512, blowfish)`,
    );
  if (family !== 'freebsd' && (method === 'sha256' || method === 'sha512'))
    throw new MasterPasswdError(
      `PASSWD_HASHING_METHOD ${method} is not supported by ${family}'s crypt(3) (md5, blowfish)`,
    );
  return tool;
}

/** master.passwd with `users`' password field set to `hash` and their change field to 0. */
export function masterPasswdWithPassword(text: string, users: readonly string[], hash: string): string {
  if (hash.includes(':') || hash.includes('\n'))
    throw new MasterPasswdError('the password hash contains ":" or a newline');
  const seen = new Set<string>();
  const lines = text.split('\n').map((line) => {
    const fields = line.split(':');
    if (fields.length !== 10 || !users.includes(fields[0] as string)) return line;
    seen.add(fields[0] as string);
    fields[1] = hash;
    fields[5] = '0';
    return fields.join(':');
  });
  const missing = users.filter((u) => !seen.has(u));
  if (missing.length > 0)
    throw new MasterPasswdError(`user(s) ${missing.join(', ')} do not exist in the image's /etc/master.passwd`);
  return lines.join('\n');
}

export const PWD_MKDB_MARKER = '/etc/snf-image-pwd_mkdb';
const HOOK_BEGIN = '# BEGIN snf-image ChangePassword: rebuild the password databases once';
const HOOK_END = '# END snf-image ChangePassword';

/** /etc/rc.local with a block that runs pwd_mkdb once (while the marker file exists); idempotent. */
export function rcLocalWithPwdMkdb(text: string): string {
  const block = [
    HOOK_BEGIN,
    `if [ -f ${PWD_MKDB_MARKER} ]; then`,
    `\t/usr/sbin/pwd_mkdb -p /etc/master.passwd && rm -f ${PWD_MKDB_MARKER}`,
    'fi',
    HOOK_END,
  ].join('\n');
  const start = text.indexOf(HOOK_BEGIN);
  const end = text.indexOf(HOOK_END);
  if (start >= 0 && end > start) return `${text.slice(0, start)}${block}${text.slice(end + HOOK_END.length)}`;
  const base = text === '' ? '#!/bin/sh\n' : text.endsWith('\n') ? text : `${text}\n`;
  return `${base}${block}\n`;
}
