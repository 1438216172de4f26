/**
 * The decompressor programs are bounded: xz gets a memory limit (an image whose
 * dictionary needs more is refused with one line), bzip2 runs under prlimit.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, it } from 'node:test';
import { decompress } from '../../src/image/decompress.ts';
import type { ByteStream } from '../../src/image/stream-util.ts';

async function* once(data: Uint8Array): ByteStream {
  yield data;
}

async function collect(stream: ByteStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** An xz file whose LZMA2 dictionary is `dictProps` (36: 1 GiB), with its block header CRC fixed. */
function xzWithDictionary(data: Buffer, dictProps: number): Buffer {
  const xz = Buffer.from(execFileSync('xz', ['-c'], { input: data }));
  const start = 12; // after the stream header
  const size = ((xz[start] as number) + 1) * 4;
  const flags = xz[start + 1] as number;
  assert.equal(flags, 0, 'a block header with one filter and no optional sizes');
  assert.deepEqual([xz[start + 2], xz[start + 3]], [0x21, 1], 'LZMA2 with one property byte');
  xz[start + 4] = dictProps;
  xz.writeUInt32LE(crc32(xz.subarray(start, start + size - 4)), start + size - 4);
  return xz;
}

describe('decompressor limits', () => {
  it('xz: an image whose dictionary needs more than 512 MiB is refused with one line', async () => {
    const data = randomBytes(100 * 1024);
    const huge = xzWithDictionary(data, 36);
    // Without a limit xz decodes it (taking the 1 GiB it asks for).
    assert.ok(execFileSync('xz', ['-dc'], { input: huge, maxBuffer: 1 << 20 }).equals(data));
    await assert.rejects(collect(decompress(once(huge), 'xz')), (e: Error) =>
      /^img_id: the xz image needs more than 512 MiB of memory to decompress \(its dictionary is too large\)$/.test(
        e.message,
      ),
    );
    assert.ok(
      (await collect(decompress(once(xzWithDictionary(data, 26)), 'xz'))).equals(data),
      'a 64 MiB dictionary (xz -9) passes',
    );
  });

  it('bzip2 runs under prlimit (address space)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-fake-bzip2-'));
    // A stand-in bzip2 that reports its own address-space limit and fails.
    writeFileSync(
      join(dir, 'bzip2'),
      "#!/bin/sh\ncat > /dev/null\ngrep '^Max address space' /proc/self/limits >&2\nexit 2\n",
    );
    chmodSync(join(dir, 'bzip2'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${dir}:${path ?? ''}`;
    try {
      await assert.rejects(collect(decompress(once(Buffer.from('BZh91AY&SY')), 'bzip2')), (e: Error) =>
        /\(Max address space\s+268435456\s+268435456\s+bytes\)$/.test(e.message),
      );
    } finally {
      process.env.PATH = path;
    }
  });
});
