/** Small helpers for byte streams given as async iterables. */

export type ByteStream = AsyncIterable<Uint8Array>;

/**
 * Reads at least `bytes` bytes (or everything, if shorter) from `input` and returns them
 * together with a stream that yields the same data again from the start. The chunks read
 * ahead are copied; the rest of the stream is passed through as it comes.
 */
export async function peek(input: ByteStream, bytes: number): Promise<{ head: Buffer; stream: ByteStream }> {
  const iterator = input[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let have = 0;
  let done = false;
  while (have < bytes) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    // Copied: some sources (readImageFile) reuse their buffers once the next chunk is asked for.
    chunks.push(Buffer.from(next.value));
    have += next.value.byteLength;
  }
  const head = Buffer.concat(chunks);
  async function* replay(): ByteStream {
    if (head.byteLength > 0) yield head;
    if (done) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  return { head: head.subarray(0, Math.min(bytes, head.byteLength)), stream: replay() };
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
