/**
 * Reads files of a deployed guest disk on the host without mounting it: debugfs (read-only)
 * on the ext filesystem of one partition, found through the partition table (sfdisk --json).
 * For tests only: the product never looks into an image on the host.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { partitionTable } from './partition-table.ts';

/** Byte offset of partition `number` (1-based, as in the partition table) of a disk image file. */
export function partitionOffset(disk: string, number: number): number {
  const table = partitionTable(disk);
  // sfdisk names partition N of a file ending in a digit <file>pN, of any other file <file>N.
  const part = table.partitions.find((p) => Number(/(\d+)$/.exec(p.node.slice(disk.length))?.[1]) === number);
  if (!part) throw new Error(`${disk} has no partition ${number}`);
  return part.start * (table.sectorsize ?? 512);
}

/** The content of `path` inside the ext filesystem of partition `number`; throws when it is missing. */
export function readGuestFile(disk: string, number: number, path: string): string {
  const r = spawnSync('debugfs', ['-R', `cat ${path}`, `${disk}?offset=${partitionOffset(disk, number)}`], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  const problems = (r.stderr ?? '').split('\n').filter((l) => l.trim() !== '' && !/^debugfs \d/.test(l));
  if (r.status !== 0 || problems.length > 0)
    throw new Error(`debugfs cat ${path} on ${disk}: ${problems.join('; ') || `exit ${r.status}`}`);
  return r.stdout;
}

/** SHA256 fingerprints of the guest's SSH host public keys (rsa, ecdsa, ed25519). */
export function guestHostKeyFingerprints(disk: string, number: number): string[] {
  return ['rsa', 'ecdsa', 'ed25519'].map((type) => {
    const pub = readGuestFile(disk, number, `/etc/ssh/ssh_host_${type}_key.pub`);
    const line = execFileSync('ssh-keygen', ['-lf', '-'], { input: pub, encoding: 'utf8' });
    const fingerprint = line.split(' ')[1];
    if (!fingerprint?.startsWith('SHA256:'))
      throw new Error(`ssh-keygen gave no fingerprint for the guest's ${type} key: ${line}`);
    return fingerprint;
  });
}

/**
 * Whether `password` matches the crypt(3) hash of `user` in the guest's /etc/shadow. The
 * hash (yescrypt on Debian 12) is checked by the host's libcrypt through Python's crypt
 * module; the password goes through stdin, never through arguments.
 */
export function guestPasswordMatches(disk: string, number: number, user: string, password: string): boolean {
  const entry = readGuestFile(disk, number, '/etc/shadow')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  const hash = entry?.split(':')[1];
  if (!hash) throw new Error(`no /etc/shadow entry with a hash for ${user}`);
  const script =
    'import crypt, sys\nhash, password = sys.stdin.read().split("\\n", 1)\nprint("yes" if crypt.crypt(password, hash) == hash else "no")';
  const out = execFileSync('python3', ['-W', 'ignore', '-c', script], {
    input: `${hash}\n${password}`,
    encoding: 'utf8',
  }).trim();
  if (out !== 'yes' && out !== 'no') throw new Error(`python3 crypt check said: ${out}`);
  return out === 'yes';
}
