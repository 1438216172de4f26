/** Small helpers for byte streams given as async iterables. */

export type ByteStream = AsyncIterable<Uint8Array>;

/**
 * Reads at least `bytes` bytes (or everything, if shorter) from `input` and returns them
 * together with a stream that yields the same data again from the start. Some sources
 * (readImageFile, readPipe) reuse a chunk's buffer once the next chunk is asked for: the
 * chunks read ahead are therefore copied, except the last one, which stays valid until the
 * replay asks for more (an 8 MiB first chunk is not copied twice for a 4 KiB look).
 */
export async function peek(input: ByteStream, bytes: number): Promise<{ head: Buffer; stream: ByteStream }> {
  const iterator = input[Symbol.asyncIterator]();
  const earlier: Uint8Array[] = [];
  let last: Uint8Array | undefined;
  let have = 0;
  let done = false;
  while (have < bytes) {
    // Copied before the next chunk is asked for: its buffer may be reused from then on.
    if (last !== undefined) earlier.push(Buffer.from(last));
    last = undefined;
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    last = next.value;
    have += next.value.byteLength;
  }
  const headParts = last === undefined ? earlier : [...earlier, last];
  const headLength = Math.min(bytes, have);
  const head = Buffer.alloc(headLength);
  let at = 0;
  for (const part of headParts) {
    if (at >= headLength) break;
    const n = Math.min(part.byteLength, headLength - at);
    head.set(part.subarray(0, n), at);
    at += n;
  }
  async function* replay(): ByteStream {
    let finished = done;
    try {
      yield* earlier;
      if (last !== undefined) yield last;
      while (!finished) {
        const next = await iterator.next();
        if (next.done === true) finished = true;
        else yield next.value;
      }
    } finally {
      // Abandoned early: let the source close its file or connection.
      if (!finished) await iterator.return?.();
    }
  }
  return { head, stream: replay() };
}

/** Passes data through, calling `onBytes` with the running total. */
export async function* counted(input: ByteStream, onBytes: (total: number) => void): ByteStream {
  let total = 0;
  for await (const chunk of input) {
    total += chunk.byteLength;
    onBytes(total);
    yield chunk;
  }
}

/** Yields `prefix` and then the input. */
export async function* prefixed(prefix: Uint8Array, input: ByteStream): ByteStream {
  yield prefix;
  yield* input;
}
