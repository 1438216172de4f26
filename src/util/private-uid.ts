/**
 * A user id of its own for each deployment's helper VM (QEMU -runas uid:gid) and each
 * image conversion (qemu-img), from the HELPER_UIDS range: one compromised helper or
 * converter cannot signal or ptrace another. A uid is taken
 * by creating its lock file (O_EXCL) in LOCK_DIR, holding this process's pid and start time;
 * a uid is skipped while any process runs under it or its lock's owner lives. A lock left by
 * a dead owner is removed safely (moved aside, checked, put back if it changed hands).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from './errors.ts';

export const LOCK_DIR = '/run/snf-image/private-uids';

export interface UidRange {
  first: number;
  last: number;
}

export interface PrivateUid {
  uid: number;
  /** QEMU's -runas / -run-with user= value: the uid with the group id of the same number. */
  user: string;
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  start: string;
  nonce: string;
}

/** A process's start time (field 22 of /proc/<pid>/stat): tells a pid's reuse apart. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Every uid (real, effective, saved, filesystem) some process runs under now. */
export function uidsInUse(): Set<number> {
  const uids = new Set<number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const line = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${name}/status`, 'latin1'))?.[1] ?? '';
      for (const uid of line.trim().split(/\s+/)) uids.add(Number(uid));
    } catch {
      // The process ended meanwhile.
    }
  }
  return uids;
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const owner = JSON.parse(await readFile(path, 'utf8')) as Partial<LockOwner>;
    return typeof owner.pid === 'number' && typeof owner.start === 'string' && typeof owner.nonce === 'string'
      ? (owner as LockOwner)
      : undefined;
  } catch {
    return undefined;
  }
}

function ownerAlive(owner: LockOwner | undefined): boolean {
  return owner !== undefined && startTime(owner.pid) === owner.start;
}

/** Removes a dead owner's lock without removing one taken meanwhile by someone else. */
async function removeStale(path: string, seen: LockOwner | undefined): Promise<void> {
  const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch {
    return;
  }
  const moved = await readOwner(aside);
  if (moved?.nonce !== seen?.nonce) await link(aside, path).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

async function tryLock(path: string, owner: LockOwner): Promise<boolean> {
  try {
    await writeFile(path, JSON.stringify(owner), { flag: 'wx', mode: 0o600 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

export async function allocatePrivateUid(range: UidRange, lockDir = LOCK_DIR): Promise<PrivateUid> {
  await mkdir(lockDir, { recursive: true, mode: 0o700 });
  const size = range.last - range.first + 1;
  const busy = uidsInUse();
  const owner: LockOwner = {
    pid: process.pid,
    start: startTime(process.pid) ?? '',
    nonce: randomBytes(12).toString('hex'),
  };
  const offset = randomInt(size);
  for (let i = 0; i < size; i++) {
    const uid = range.first + ((offset + i) % size);
    if (busy.has(uid)) continue;
    const path = join(lockDir, String(uid));
    if (!(await tryLock(path, owner))) {
      const holder = await readOwner(path);
      if (ownerAlive(holder)) continue;
      await removeStale(path, holder);
      if (!(await tryLock(path, owner))) continue;
    }
    // A process may have started under this uid between the scan and the lock.
    if (uidsInUse().has(uid)) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    let released = false;
    return {
      uid,
      user: `${uid}:${uid}`,
      release: async () => {
        if (released) return;
        released = true;
        if ((await readOwner(path))?.nonce === owner.nonce) await unlink(path).catch(() => undefined);
      },
    };
  }
  throw new UserError(
    `HELPER_UIDS: every uid of ${range.first}-${range.last} is in use (by running helper VMs, conversions or other processes); widen the range`,
  );
}
