/**
 * Plain, exact stream copies between a disk and a pipe (export / import): large blocks,
 * a byte limit that is enforced before anything beyond it is written, a final flush.
 */
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../util/errors.ts';

const COPY_BLOCK_SIZE = 4 * 1024 * 1024;

/** Streams `size` bytes of the disk at `path` to `out`. Returns the byte count. */
export async function copyDiskToStream(path: string, size: number, out: Writable): Promise<number> {
  let copied = 0;
  if (size > 0) {
    const input = createReadStream(path, { start: 0, end: size - 1, highWaterMark: COPY_BLOCK_SIZE });
    input.on('data', (chunk) => {
      copied += chunk.length;
    });
    await pipeline(input, out, { end: false });
  }
  if (copied !== size) throw new UserError(`${path}: read ${copied} bytes but the disk has ${size}`);
  return copied;
}

/**
 * Writes everything `input` yields to `disk` from offset 0, in blocks of COPY_BLOCK_SIZE.
 * More than `limit` bytes is an error; nothing past the limit is written.
 */
export async function copyStreamToDisk(
  input: Readable,
  disk: FileHandle,
  limit: number,
  label: string,
): Promise<number> {
  const block = Buffer.allocUnsafe(COPY_BLOCK_SIZE);
  let filled = 0;
  let offset = 0;
  const flush = async () => {
    let done = 0;
    while (done < filled) {
      const { bytesWritten } = await disk.write(block, done, filled - done, offset + done);
      done += bytesWritten;
    }
    offset += filled;
    filled = 0;
  };
  for await (const chunk of input) {
    const data = chunk as Buffer;
    if (offset + filled + data.length > limit) {
      throw new UserError(`${label}: the input is larger than the disk (${limit} bytes); refusing the excess`);
    }
    let used = 0;
    while (used < data.length) {
      const n = Math.min(data.length - used, COPY_BLOCK_SIZE - filled);
      data.copy(block, filled, used, used + n);
      filled += n;
      used += n;
      if (filled === COPY_BLOCK_SIZE) await flush();
    }
  }
  await flush();
  await disk.datasync();
  return offset;
}
