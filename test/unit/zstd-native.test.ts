import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { decompress } from '../../src/image/decompress.ts';
import type { ByteStream } from '../../src/image/stream-util.ts';

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const zstd = (data: Uint8Array, ...args: string[]) =>
  execFileSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 1 << 30 });

/** Yields `data` in pieces of `size` bytes, each a view of one reused buffer (as readImageFile does). */
async function* pieces(data: Uint8Array, size: number): ByteStream {
  const buffer = new Uint8Array(size);
  for (let i = 0; i < data.length; i += size) {
    const n = Math.min(size, data.length - i);
    buffer.set(data.subarray(i, i + n));
    yield buffer.subarray(0, n);
  }
}

async function decodeAll(input: ByteStream): Promise<{ hash: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of decompress(input, 'zstd')) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { hash: hash.digest('hex'), bytes };
}

// Data and zero runs, as disk images are: 3 MiB random, 9 MiB zero, 1 MiB random and a tail.
const image = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(9 << 20), randomBytes(1 << 20), randomBytes(777)]);

describe('zstd decoding in the addon', () => {
  it('decodes exactly, whatever the input piece size', async () => {
    const compressed = zstd(image, '-3');
    for (const size of [4096, 1 << 20, compressed.length]) {
      assert.deepEqual(
        await decodeAll(pieces(compressed, size)),
        { hash: sha(image), bytes: image.length },
        `pieces of ${size}`,
      );
    }
    // One-byte pieces on a small stream exercise every partial-header path.
    const small = randomBytes(5000);
    assert.deepEqual(await decodeAll(pieces(zstd(small), 1)), { hash: sha(small), bytes: small.length });
  });

  it('decodes concatenated frames as one stream (zstd -c a b)', async () => {
    const a = randomBytes(100000);
    const b = Buffer.alloc(3 << 20);
    const both = Buffer.concat([zstd(a), zstd(b, '-19')]);
    assert.deepEqual(await decodeAll(pieces(both, 65536)), {
      hash: sha(Buffer.concat([a, b])),
      bytes: a.length + b.length,
    });
  });

  it('a truncated stream, corrupt data and trailing garbage are one-line errors naming zstd', async () => {
    const compressed = zstd(image, '-3');
    await assert.rejects(
      decodeAll(pieces(compressed.subarray(0, compressed.length - 100), 65536)),
      /^UserError: img_id: the zstd stream is corrupt or truncated \(the stream ends inside a frame\)$/m,
    );
    const corrupt = Buffer.from(compressed);
    corrupt.fill(0x55, 2000, 6000);
    await assert.rejects(decodeAll(pieces(corrupt, 65536)), /img_id: the zstd stream is corrupt or truncated \(.+\)/);
    await assert.rejects(
      decodeAll(pieces(Buffer.concat([compressed, Buffer.from('not zstd at all')]), 65536)),
      /img_id: the zstd stream is corrupt or truncated/,
    );
  });

  it('refuses a frame that needs a window over 128 MiB (as the zstd program does) with one line; 128 MiB passes', async () => {
    const small = randomBytes(300 * 1024);
    // From a pipe zstd knows no content size, so the frame header keeps the full window.
    await assert.rejects(decodeAll(pieces(zstd(small, '--long=28'), 65536)), (e: Error) =>
      /^img_id: the zstd image needs a decoding window larger than 128 MiB \(compressed with --long=28 or more\); recompress it with at most --long=27$/.test(
        e.message,
      ),
    );
    assert.equal((await decodeAll(pieces(zstd(small, '--long=27'), 65536))).hash, sha(small));
  });

  it('passes an error of the input on as it is', async () => {
    const compressed = zstd(image, '-3');
    async function* failing(): ByteStream {
      yield compressed.subarray(0, 100000);
      throw new Error('connection dropped');
    }
    await assert.rejects(decodeAll(failing()), /^Error: connection dropped$/);
  });

  it('stops decoding when the consumer stops early', async () => {
    const compressed = zstd(image, '-3');
    let read = 0;
    async function* counting(): ByteStream {
      for await (const piece of pieces(compressed, 4096)) {
        read += piece.length;
        yield piece;
      }
    }
    for await (const chunk of decompress(counting(), 'zstd')) {
      assert.ok(chunk.length > 0);
      break;
    }
    assert.ok(read < compressed.length, `read ${read} of ${compressed.length} compressed bytes after one chunk`);
  });
});
