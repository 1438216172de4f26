/**
 * Instance disks as the host sees them: a block device (LV, DRBD, loop) or a Ganeti `file`
 * disk (a regular, usually sparse, file). Size comes from sysfs for block devices.
 */
import { constants, promises as fs, readFileSync, statSync } from 'node:fs';
import { UserError } from '../util/errors.ts';

export type DiskKind = 'block' | 'file';

export interface DiskInfo {
  path: string;
  kind: DiskKind;
  sizeBytes: number;
}

function blockDeviceSize(rdev: number, path: string): number {
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 1048576) & 0xfff00);
  try {
    const sectors = Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim());
    return sectors * 512;
  } catch {
    throw new UserError(`${path}: cannot read the size of block device ${major}:${minor} from /sys`);
  }
}

/** Describes the disk at `path`; a path that is neither a block device nor a file is refused. */
export function inspectDisk(path: string, label = 'disk'): DiskInfo {
  let st;
  try {
    st = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UserError(`${label} ${path}: ${code === 'ENOENT' ? 'does not exist' : `cannot be accessed (${code})`}`);
  }
  if (st.isBlockDevice()) return { path, kind: 'block', sizeBytes: blockDeviceSize(st.rdev, path) };
  if (st.isFile()) return { path, kind: 'file', sizeBytes: st.size };
  throw new UserError(`${label} ${path}: is neither a block device nor a regular file`);
}

/** Opens a disk for writing without truncating it (Ganeti file disks must keep their size). */
export async function openDiskForWrite(path: string, extraFlags = 0): Promise<fs.FileHandle> {
  return fs.open(path, constants.O_WRONLY | extraFlags);
}
