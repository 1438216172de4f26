/**
 * The Linux adapter: hostname, machine id, passwords, authorized keys, SSH host keys and
 * SELinux relabel, per distribution family where they differ.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, TaskError } from '../exec.ts';
import { type GuestFs, parsePasswd } from '../guest-files.ts';

export type DistroFamily = 'debian' | 'redhat' | 'suse' | 'arch' | 'gentoo' | 'slackware' | 'alpine' | 'unknown';

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1] as string] = (m[2] ?? '').replace(/^["']|["']$/g, '');
  }
  return out;
}

export function distroFamily(fs: GuestFs): DistroFamily {
  const release = parseOsRelease(fs.readOr('/etc/os-release', fs.readOr('/usr/lib/os-release', '')));
  const ids = [release.ID ?? '', ...(release.ID_LIKE ?? '').split(/\s+/)].map((s) => s.toLowerCase());
  const known: Array<[DistroFamily, string[]]> = [
    ['debian', ['debian', 'ubuntu']],
    ['redhat', ['rhel', 'fedora', 'centos', 'rocky', 'almalinux']],
    ['suse', ['suse', 'opensuse', 'sles']],
    ['arch', ['arch']],
    ['gentoo', ['gentoo']],
    ['slackware', ['slackware']],
    ['alpine', ['alpine']],
  ];
  for (const [family, names] of known) if (ids.some((id) => names.includes(id))) return family;
  if (fs.exists('/etc/debian_version')) return 'debian';
  if (fs.exists('/etc/redhat-release')) return 'redhat';
  if (fs.exists('/etc/SuSE-release')) return 'suse';
  if (fs.exists('/etc/gentoo-release')) return 'gentoo';
  if (fs.exists('/etc/slackware-version')) return 'slackware';
  if (fs.exists('/etc/alpine-release')) return 'alpine';
  if (fs.exists('/etc/arch-release')) return 'arch';
  return 'unknown';
}

/** /etc/hosts with the 127.0.1.1 line naming this host (replaced, or added). */
export function hostsWithName(hosts: string, fqdn: string): string {
  const short = fqdn.split('.')[0] ?? fqdn;
  const names = short === fqdn ? fqdn : `${fqdn} ${short}`;
  const lines = hosts.split('\n');
  const index = lines.findIndex((l) => /^\s*127\.0\.1\.1\s/.test(l));
  if (index >= 0) lines[index] = `127.0.1.1\t${names}`;
  else {
    const localhost = lines.findIndex((l) => /^\s*127\.0\.0\.1\s/.test(l));
    lines.splice(localhost >= 0 ? localhost + 1 : 0, 0, `127.0.1.1\t${names}`);
  }
  return lines.join('\n');
}

export function assignHostname(fs: GuestFs, hostname: string): string[] {
  const family = distroFamily(fs);
  const written: string[] = [];
  const write = (path: string, content: string) => {
    fs.write(path, content);
    written.push(path);
  };
  if (fs.exists('/etc/hostname') || ['debian', 'arch', 'alpine', 'redhat', 'unknown'].includes(family))
    write('/etc/hostname', `${hostname}\n`);
  if (family === 'redhat' && fs.exists('/etc/sysconfig/network')) {
    const text = fs.read('/etc/sysconfig/network');
    write(
      '/etc/sysconfig/network',
      /^HOSTNAME=/m.test(text)
        ? text.replace(/^HOSTNAME=.*$/m, `HOSTNAME=${hostname}`)
        : `${text.replace(/\n?$/, '\n')}HOSTNAME=${hostname}\n`,
    );
  }
  if (family === 'suse' || family === 'slackware') write('/etc/HOSTNAME', `${hostname}\n`);
  if (family === 'gentoo') write('/etc/conf.d/hostname', `hostname="${hostname}"\n`);
  write('/etc/hosts', hostsWithName(fs.readOr('/etc/hosts', '127.0.0.1\tlocalhost\n'), hostname));
  return written;
}

export function changeMachineId(fs: GuestFs): boolean {
  if (!fs.exists('/etc/machine-id')) return false;
  const current = fs.read('/etc/machine-id').trim();
  if (current === '' || current === 'uninitialized') return false;
  const id = randomBytes(16).toString('hex');
  fs.write('/etc/machine-id', `${id}\n`, { mode: 0o444 });
  if (fs.exists('/var/lib/dbus/machine-id')) {
    try {
      fs.write('/var/lib/dbus/machine-id', `${id}\n`);
    } catch {
      // a symlink to /etc/machine-id is fine as it is
    }
  }
  return true;
}

const METHODS: Readonly<Record<string, string>> = {
  md5: 'md5crypt',
  sha256: 'sha256crypt',
  sha512: 'sha512crypt',
  blowfish: 'bcrypt',
  yescrypt: 'yescrypt',
  sha1: 'sha1crypt',
};

/** The strongest hashing method the guest's libcrypt verifies: yescrypt with libxcrypt, else sha512. */
export function guestHashMethod(fs: GuestFs): 'yescrypt' | 'sha512' {
  for (const dir of [
    '/lib/x86_64-linux-gnu',
    '/usr/lib/x86_64-linux-gnu',
    '/lib64',
    '/usr/lib64',
    '/lib',
    '/usr/lib',
  ]) {
    if (!fs.isDirectory(dir)) continue;
    for (const file of readdirSync(fs.path(dir)).filter((f) => /^libcrypt\.so\.\d/.test(f))) {
      try {
        if (fs.readBytes(`${dir}/${file}`).includes('yescrypt')) return 'yescrypt';
      } catch {
        // unreadable, or not a regular file: keep looking
      }
    }
  }
  return 'sha512';
}

/** Hashes the password in the helper; it reaches mkpasswd on stdin, never in argv. */
export async function hashPassword(password: string, method: string): Promise<string> {
  const tool = METHODS[method];
  if (!tool) throw new TaskError(`PASSWD_HASHING_METHOD ${method} is not supported`);
  const r = await run('mkpasswd', [`--method=${tool}`, '--stdin'], { input: `${password}\n` });
  const hash = r.stdout.trim();
  if (!hash.startsWith('$')) throw new TaskError('mkpasswd produced no hash');
  return hash;
}

/** Replaces the password field of `users` in shadow text; the other fields are kept, lastchg set to today. */
export function shadowWithPassword(shadow: string, users: readonly string[], hash: string, today: number): string {
  const seen = new Set<string>();
  const lines = shadow.split('\n').map((line) => {
    const fields = line.split(':');
    if (fields.length < 3 || !users.includes(fields[0] as string)) return line;
    seen.add(fields[0] as string);
    fields[1] = hash;
    fields[2] = String(today);
    return fields.join(':');
  });
  const missing = users.filter((u) => !seen.has(u));
  if (missing.length > 0) throw new TaskError(`user(s) ${missing.join(', ')} do not exist in the image's /etc/shadow`);
  return lines.join('\n');
}

export function changePasswords(fs: GuestFs, users: readonly string[], hash: string): void {
  const today = Math.floor(Date.now() / 86400000);
  fs.write('/etc/shadow', shadowWithPassword(fs.read('/etc/shadow'), users, hash, today));
}

/** AuthorizedKeysFile of the image's sshd_config (first path; %h %u %% expanded). */
export function authorizedKeysPath(sshdConfig: string, user: string, home: string): string | undefined {
  const line = sshdConfig.split('\n').find((l) => /^\s*AuthorizedKeysFile\s+/i.test(l));
  const first = line ? line.trim().split(/\s+/)[1] : '%h/.ssh/authorized_keys';
  if (!first || first.toLowerCase() === 'none') return undefined;
  // One pass, as sshd expands: the home directory is inserted as it is (a % or $& in it is not a pattern).
  const expanded = first.replace(/%([%hu])/g, (_, c: string) => (c === 'h' ? home : c === 'u' ? user : '%'));
  return expanded.startsWith('/') ? expanded : `${home.replace(/\/$/, '')}/${expanded}`;
}

export function addAuthorizedKeys(fs: GuestFs, users: readonly string[], keys: string): string[] {
  const passwd = parsePasswd(fs.read('/etc/passwd'));
  const sshdConfig = fs.readOr('/etc/ssh/sshd_config', '');
  const done: string[] = [];
  for (const name of users) {
    const user = passwd.find((p) => p.name === name);
    if (!user) throw new TaskError(`user ${name} does not exist in the image's /etc/passwd`);
    const path = authorizedKeysPath(sshdConfig, name, user.home);
    if (!path) continue;
    const dir = path.slice(0, path.lastIndexOf('/')) || '/';
    fs.mkdirp(dir, 0o700, user.uid, user.gid);
    const existing = fs.readOr(path, '');
    const addition = `${keys.replace(/\r/g, '').trim()}\n`;
    fs.write(path, existing === '' || existing.endsWith('\n') ? existing + addition : `${existing}\n${addition}`, {
      mode: 0o600,
      uid: user.uid,
      gid: user.gid,
    });
    done.push(path);
  }
  return done;
}

const KEY_TYPES = ['rsa', 'ecdsa', 'ed25519'] as const;

/** Removes the image's host keys and makes fresh ones of every type its sshd uses. */
export type ProvidedKeys = Readonly<Record<string, { privateKey: string; publicKey: string }>>;

export async function regenerateHostKeys(fs: GuestFs, provided: ProvidedKeys = {}): Promise<string[]> {
  const sshDir = '/etc/ssh';
  if (!fs.isDirectory(sshDir)) return [];
  const config = fs.readOr('/etc/ssh/sshd_config', '');
  const custom = config
    .split('\n')
    .map((l) => /^\s*HostKey\s+(\S+)/i.exec(l)?.[1])
    .filter((p): p is string => p !== undefined);
  const defaults = KEY_TYPES.map((t) => `/etc/ssh/ssh_host_${t}_key`);
  const wanted = custom.length > 0 ? custom : defaults;
  for (const name of readdirSync(fs.path(sshDir)).filter((f) => f.startsWith('ssh_host_')))
    fs.remove(`${sshDir}/${name}`);
  for (const path of custom) {
    fs.remove(path);
    fs.remove(`${path}.pub`);
  }
  const work = mkdtempSync(join(tmpdir(), 'hostkeys-'));
  const made: string[] = [];
  try {
    for (const path of wanted) {
      const type = KEY_TYPES.find((t) => path.includes(`_${t}_`) || path.endsWith(`_${t}`)) ?? 'ed25519';
      const given = provided[type];
      if (given && !made.some((m) => m.includes(`_${type}_`))) {
        fs.write(path, given.privateKey, { mode: 0o600, uid: 0, gid: 0 });
        fs.write(`${path}.pub`, given.publicKey, { mode: 0o644, uid: 0, gid: 0 });
        made.push(path);
        continue;
      }
      const file = join(work, `key-${made.length}`);
      await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `root@${type}`, '-f', file]);
      fs.write(path, readFileSync(file), { mode: 0o600, uid: 0, gid: 0 });
      fs.write(`${path}.pub`, readFileSync(`${file}.pub`), { mode: 0o644, uid: 0, gid: 0 });
      made.push(path);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return made;
}

export function selinuxAutorelabel(fs: GuestFs): boolean {
  if (distroFamily(fs) !== 'redhat') return false;
  fs.write('/.autorelabel', '');
  return true;
}
