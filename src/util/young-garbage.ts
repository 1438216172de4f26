/**
 * Bounds the memory of streams whose producers allocate a new Buffer per chunk (zlib's
 * output, undici's socket reads): V8 collects such buffers only when 64 MiB of them have
 * piled up, and then with a full collection. A minor collection every 2 MiB (everyBytes, the
 * size of the executable's semi-spaces: build-sea.ts) frees them while they are young, for
 * less CPU than the full collections it replaces.
 * Measured deploying the 1.5 GiB test image: peak RSS gzip 213 -> 154 MB, http 238 -> 163 MB,
 * with less CPU than before (the full collections it replaces cost more).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ByteStream } from '../image/stream-util.ts';

type Collect = (options: { type: 'minor' | 'major'; execution: 'sync' | 'async' }) => void;

let collect: Collect | undefined;

function minorCollector(): Collect | undefined {
  if (collect !== undefined) return collect;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    if (typeof gc === 'function') collect = gc as Collect;
  } catch {
    // Not available on this runtime: the stream just runs without the nudge.
  }
  return collect;
}

/** Passes `input` through, asking for a minor collection every `everyBytes` bytes. */
export async function* collectingYoungGarbage(input: ByteStream, everyBytes = 2 * 1024 * 1024): ByteStream {
  const gc = minorCollector();
  let since = 0;
  for await (const chunk of input) {
    yield chunk;
    since += chunk.byteLength;
    if (gc !== undefined && since >= everyBytes) {
      since = 0;
      gc({ type: 'minor', execution: 'sync' });
    }
  }
}
