/**
 * Zeroes a range of a disk: BLKZEROOUT / fallocate through the directio addon (cheap where
 * the device supports write-zeroes), else plain writes of zeroes. Used for the part of the
 * disk after the image, so no previous tenant's data stays readable.
 */
import { open } from 'node:fs/promises';
import { log } from '../log/logger.ts';
import type { DiskInfo } from './disk-target.ts';
import { directIo } from './native.ts';

const ZERO_CHUNK = 4 * 1024 * 1024;

export async function zeroDiskRange(disk: DiskInfo, offset: number, length: number): Promise<void> {
  if (length <= 0) return;
  const started = Date.now();
  const handle = await open(disk.path, 'r+');
  try {
    try {
      await directIo().zeroRange(handle.fd, offset, length, disk.kind === 'block');
    } catch (error) {
      log().debug({ err: (error as Error).message }, 'zeroing by ioctl/fallocate failed; writing zeroes');
      const zeros = Buffer.alloc(ZERO_CHUNK);
      for (let at = offset; at < offset + length; at += ZERO_CHUNK) {
        const n = Math.min(ZERO_CHUNK, offset + length - at);
        await handle.write(zeros, 0, n, at);
      }
    }
    await handle.datasync();
  } finally {
    await handle.close();
  }
  log().info({ offset, bytes: length, seconds: (Date.now() - started) / 1000 }, 'zeroed the disk after the image');
}
