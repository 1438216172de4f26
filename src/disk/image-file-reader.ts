/**
 * Reads a local raw image file for the image writer without filling the page cache (see
 * readImageFile).
 */
import { closeSync, constants, fstatSync, openSync, read } from 'node:fs';
import { errorCode } from '../util/errors.ts';
import { MEMORY_ALIGNMENT, ZERO_CHUNK_MAX, zeroChunk } from './image-writer.ts';
import { directIo } from './native.ts';

const MiB = 1024 * 1024;
/** Behind the read position, cached pages of a buffered read are dropped every this many bytes. */
const DROP_CACHE_EVERY = 64 * MiB;

export interface ReadImageFileOptions {
  /** Largest chunk read (and yielded) at once; a multiple of 4096 (default 4 MiB). */
  chunkSize?: number;
  /** Reads in flight ahead of the consumer (default 2). */
  readAhead?: number;
  /** Skip holes with SEEK_DATA / SEEK_HOLE and yield zeroChunk()s for them (default true). */
  sparse?: boolean;
  /** Holes shorter than this are read like data (default 1 MiB). */
  minHole?: number;
}

function readAt(fd: number, buffer: Uint8Array, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, 0, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead)));
  });
}

/**
 * Reads a local raw image file for writeImage without filling the page cache: O_DIRECT
 * reads into aligned buffers (falling back to buffered reads plus posix_fadvise DONTNEED
 * behind the read position), `readAhead` reads in flight, holes skipped (SEEK_DATA /
 * SEEK_HOLE) and yielded as zeroChunk()s. Each yielded chunk is valid only until the next
 * one is requested (its buffer is then reused).
 */
export async function* readImageFile(path: string, options: ReadImageFileOptions = {}): AsyncGenerator<Uint8Array> {
  const chunkSize = options.chunkSize ?? 4 * MiB;
  const ahead = options.readAhead ?? 2;
  const sparse = options.sparse ?? true;
  const minHole = options.minHole ?? MiB;
  if (!Number.isInteger(chunkSize) || chunkSize < 4096 || chunkSize % 4096 !== 0) {
    throw new RangeError(`chunkSize must be a positive multiple of 4096 (got ${chunkSize})`);
  }
  if (!Number.isInteger(ahead) || ahead < 1 || ahead > 64)
    throw new RangeError(`readAhead must be in 1..64 (got ${ahead})`);
  const io = directIo();
  let fd: number;
  let direct = true;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
  } catch (error) {
    if (errorCode(error) !== 'EINVAL') throw error;
    fd = openSync(path, constants.O_RDONLY);
    direct = false;
  }
  let bufferedFd: number | undefined;
  const size = fstatSync(fd).size;
  const ring = Array.from({ length: ahead + 1 }, () => new Uint8Array(io.allocAligned(chunkSize, MEMORY_ALIGNMENT)));
  let ringIndex = 0;
  let dropped = 0;

  // The image as segments: data ranges (<= chunkSize each) and holes (<= ZERO_CHUNK_MAX).
  function* segments(): Generator<{ position: number; length: number; hole: boolean }> {
    let position = 0;
    while (position < size) {
      let dataStart = position;
      if (sparse) {
        const found = io.seekData(fd, position);
        dataStart = found < 0 ? size : Math.min(found, size);
      }
      for (; position < dataStart; ) {
        const length = Math.min(dataStart - position, ZERO_CHUNK_MAX);
        yield { position, length, hole: true };
        position += length;
      }
      if (position >= size) return;
      let dataEnd = size;
      if (sparse) {
        // Holes shorter than minHole are read through (cheap with O_DIRECT: the kernel
        // zero-fills), so a fragmented image does not turn into many small reads.
        for (let from = position; ; ) {
          const hole = io.seekHole(fd, from);
          dataEnd = hole < 0 ? size : Math.min(hole, size);
          if (dataEnd <= from) {
            dataEnd = size; // a file system that misreports: read the rest
            break;
          }
          if (dataEnd >= size) break;
          const next = io.seekData(fd, dataEnd);
          if (next < 0 || next - dataEnd >= minHole) break;
          from = next;
        }
      }
      for (; position < dataEnd; ) {
        const length = Math.min(dataEnd - position, chunkSize);
        yield { position, length, hole: false };
        position += length;
      }
    }
  }

  const readSegment = async (buffer: Uint8Array, position: number, length: number): Promise<Uint8Array> => {
    let done = 0;
    while (done < length) {
      let n: number;
      if (direct) {
        // O_DIRECT: whole aligned blocks; the end of the file makes the last read short.
        const want = Math.min(Math.ceil((length - done) / 4096) * 4096, buffer.length - done);
        try {
          n = await readAt(fd, done === 0 ? buffer : buffer.subarray(done), want, position + done);
        } catch (error) {
          if (errorCode(error) !== 'EINVAL') throw error;
          direct = false; // alignment this file system does not accept: read buffered
          continue;
        }
      } else {
        bufferedFd ??= openSync(path, constants.O_RDONLY);
        n = await readAt(bufferedFd, done === 0 ? buffer : buffer.subarray(done), length - done, position + done);
      }
      if (n <= 0) throw new Error(`${path}: unexpected end of file at offset ${position + done} (size ${size})`);
      done += n;
    }
    return buffer.subarray(0, length);
  };

  const plan = segments();
  const pending: Promise<Uint8Array>[] = [];
  const issue = (): void => {
    const next = plan.next();
    if (next.done === true) return;
    const { position, length, hole } = next.value;
    if (hole) {
      pending.push(Promise.resolve(zeroChunk(length)));
      return;
    }
    const buffer = ring[ringIndex] ?? new Uint8Array(0);
    ringIndex = (ringIndex + 1) % ring.length;
    const promise = readSegment(buffer, position, length);
    promise.catch(() => undefined); // awaited in order below; avoid an unhandled rejection meanwhile
    pending.push(promise);
  };
  try {
    for (let i = 0; i < ahead; i++) issue();
    let position = 0;
    for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
      const chunk = await next;
      issue(); // into the buffer of the chunk yielded before this one: the consumer is done with it
      yield chunk;
      position += chunk.length;
      const cacheFd = bufferedFd ?? (direct ? undefined : fd);
      if (cacheFd !== undefined && position - dropped >= DROP_CACHE_EVERY) {
        io.dropCache(cacheFd, dropped, position - dropped);
        dropped = position;
      }
    }
    const cacheFd = bufferedFd ?? (direct ? undefined : fd);
    if (cacheFd !== undefined && position > dropped) io.dropCache(cacheFd, dropped, position - dropped);
  } finally {
    await Promise.allSettled(pending);
    closeSync(fd);
    if (bufferedFd !== undefined) closeSync(bufferedFd);
  }
}
