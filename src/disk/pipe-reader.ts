/**
 * Reads the read end of a pipe (a child process's output) into a few reused buffers, so a
 * gigabyte stream does not allocate a gigabyte of short-lived Buffers (whose garbage
 * collection cost more CPU than zstd's decompression). Each buffer is filled by one
 * threadpool job (the addon's readFull), one ahead of the consumer. Each yielded chunk is valid only until the next one is
 * requested (its buffer is then reused), like readImageFile.
 */
import { close } from 'node:fs';
import { directIo } from './native.ts';

const MiB = 1024 * 1024;

/** Fills `buffer` from the pipe (in the addon: one threadpool job per buffer); short only at the end of the stream. */
async function fill(fd: number, buffer: Uint8Array): Promise<Uint8Array> {
  return buffer.subarray(0, await directIo().readFull(fd, buffer));
}

export interface PipeReaderOptions {
  /** Bytes per yielded chunk (default 1 MiB, the pipe capacity decompress.ts asks for). */
  chunkSize?: number;
}

/** Yields the pipe's data until end of file; closes `fd` when done (or abandoned). */
export async function* readPipe(fd: number, options: PipeReaderOptions = {}): AsyncGenerator<Uint8Array> {
  const chunkSize = options.chunkSize ?? MiB;
  // Three buffers: the one the consumer holds, the one being filled, and the one filled next.
  const ring = [0, 1, 2].map(() => new Uint8Array(chunkSize));
  let index = 0;
  let pending: Promise<Uint8Array> | undefined = fill(fd, ring[index] as Uint8Array);
  try {
    while (pending !== undefined) {
      const chunk: Uint8Array = await pending;
      if (chunk.length === 0) {
        pending = undefined;
        return;
      }
      index = (index + 1) % ring.length;
      pending = chunk.length < chunkSize ? undefined : fill(fd, ring[index] as Uint8Array);
      pending?.catch(() => undefined); // awaited above on the next round
      yield chunk;
    }
  } finally {
    // An abandoned read ends when the writer closes its end (the caller kills the child).
    if (pending !== undefined) await pending.catch(() => undefined);
    await new Promise<void>((resolve) => close(fd, () => resolve()));
  }
}
