/**
 * Instance disks as the host sees them: a block device (LV, DRBD, loop) or a Ganeti `file`
 * disk (a regular, usually sparse, file). A block device's size is asked of the opened
 * device itself (BLKGETSIZE64), never looked up by device number: a wrong decoding of a
 * number names another device, whose size would bound the write and the tail wipe.
 */
import { closeSync, constants, fstatSync, openSync, promises as fs } from 'node:fs';
import { directIo } from './native.ts';
import { UserError } from '../util/errors.ts';

type DiskKind = 'block' | 'file';

export interface DiskInfo {
  path: string;
  kind: DiskKind;
  sizeBytes: number;
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String(error);
}

/** Describes the disk at `path`; a path that is neither a block device nor a file is refused. */
export function inspectDisk(path: string, label = 'disk'): DiskInfo {
  let fd: number;
  try {
    // O_NONBLOCK: opening never waits (a FIFO planted at the path is refused below, not hung on).
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = errorCode(error);
    throw new UserError(`${label} ${path}: ${code === 'ENOENT' ? 'does not exist' : `cannot be accessed (${code})`}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isBlockDevice()) {
      let sizeBytes: number;
      try {
        sizeBytes = directIo().blockDeviceSize(fd);
      } catch (error) {
        throw new UserError(`${label} ${path}: cannot read the size of the block device (${errorCode(error)})`);
      }
      return { path, kind: 'block', sizeBytes };
    }
    if (st.isFile()) return { path, kind: 'file', sizeBytes: st.size };
    throw new UserError(`${label} ${path}: is neither a block device nor a regular file`);
  } finally {
    closeSync(fd);
  }
}

/** Opens a disk for writing without truncating it (Ganeti file disks must keep their size). */
export async function openDiskForWrite(path: string, extraFlags = 0): Promise<fs.FileHandle> {
  return fs.open(path, constants.O_WRONLY | extraFlags);
}
