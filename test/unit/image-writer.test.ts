import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readImageFile } from '../../src/disk/image-file-reader.ts';
import {
  isKnownZero,
  writeImage,
  zeroChunk,
  type WriteImageOptions,
  type WriteTarget,
} from '../../src/disk/image-writer.ts';
import { directIo, sourceAddonPath } from '../../src/disk/native.ts';
import { UserError } from '../../src/util/errors.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const root = join(import.meta.dirname, '..', '..');

/** Builds dist/directio.node when it is missing or older than its source. */
function ensureAddon(): void {
  const addon = sourceAddonPath();
  const source = join(root, 'src', 'disk', 'native', 'directio.c');
  if (existsSync(addon) && statSync(addon).mtimeMs >= statSync(source).mtimeMs) return;
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.ts')], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `scripts/build-native.ts failed: ${r.stderr}`);
}

/** Deterministic random image: data extents (some tiny, some spanning buffers) and zero holes. */
function makeImage(size: number, seed = 1): Buffer {
  const image = Buffer.alloc(size);
  let state = seed;
  const next = (limit: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % Math.max(1, limit);
  };
  let position = next(3 * 64 * KiB);
  while (position < size) {
    const length = Math.min(size - position, 1 + next(next(2) === 0 ? 8 * KiB : 3 * MiB));
    randomBytes(length).copy(image, position);
    position += length + next(next(3) === 0 ? 4 * MiB : 300 * KiB);
  }
  return image;
}

/** Yields `data` in chunks of varying, unaligned sizes. */
async function* chunks(data: Uint8Array, maxChunk = 3 * MiB + 17): AsyncGenerator<Uint8Array> {
  let position = 0;
  let i = 0;
  const sizes = [1, 511, 4096, 65536 + 3, maxChunk, 100000, 2 * MiB];
  while (position < data.length) {
    const n = Math.min(data.length - position, sizes[i++ % sizes.length] ?? 4096);
    yield data.subarray(position, position + n);
    position += n;
  }
}

function garbageFile(path: string, size: number): void {
  writeFileSync(path, Buffer.alloc(size, 0xff));
}

function readRange(path: string, start: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, length - done, start + done);
      if (n === 0) break;
      done += n;
    }
    return out.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

function cmpEqual(a: string, b: string, length: number): { equal: boolean; output: string } {
  const r = spawnSync('cmp', ['-n', String(length), a, b], { encoding: 'utf8' });
  return { equal: r.status === 0, output: `${r.stdout}${r.stderr}`.trim() };
}

function allBytes(buffer: Buffer, value: number): boolean {
  return buffer.every((b) => b === value);
}

const dir = mkdtempSync(join(tmpdir(), 'snf-image-writer-'));
after(() => rmSync(dir, { recursive: true, force: true }));
before(ensureAddon);

/** Writes `image` (saved as a file for cmp) onto target and checks the result byte for byte. */
async function writeAndCheck(
  image: Buffer,
  target: WriteTarget,
  options: WriteImageOptions = {},
  backing?: { path: string; size: number },
) {
  const source = join(dir, `source-${image.length}.img`);
  writeFileSync(source, image);
  const progress: number[] = [];
  const result = await writeImage(chunks(image), target, { ...options, onProgress: (n) => progress.push(n) });
  assert.equal(result.bytes, image.length);
  assert.equal(result.dataBytes + result.zeroBytes, image.length);
  const cmp = cmpEqual(source, target.path, image.length);
  assert.ok(cmp.equal, `cmp: ${cmp.output}`);
  for (let i = 1; i < progress.length; i++)
    assert.ok((progress[i] ?? 0) >= (progress[i - 1] ?? 0), 'progress goes forward');
  if (image.length > 0) assert.equal(progress.at(-1), image.length);
  // What lies beyond the image keeps its garbage.
  const after = backing ?? { path: target.path, size: target.sizeBytes };
  const rest = readRange(after.path, image.length, after.size - image.length);
  assert.equal(rest.length, after.size - image.length);
  assert.ok(allBytes(rest, 0xff), 'bytes beyond the image are untouched');
  return result;
}

describe('directio addon', () => {
  it('allocates page-aligned memory and reports block sizes', () => {
    const io = directIo();
    const buffer = io.allocAligned(MiB, 4096);
    assert.equal(buffer.byteLength, MiB);
    assert.throws(() => io.allocAligned(4096, 3000), RangeError);
    const fd = openSync(dir, 'r');
    try {
      const lbs = io.logicalBlockSize(fd);
      assert.ok(lbs >= 512 && (lbs & (lbs - 1)) === 0, `logical block size ${lbs}`);
    } finally {
      closeSync(fd);
    }
  });

  it('zeroes a range of a file and reports errors with their code', async () => {
    const io = directIo();
    const path = join(dir, 'zero-range.raw');
    garbageFile(path, 3 * MiB);
    const fd = openSync(path, 'r+');
    try {
      await io.zeroRange(fd, MiB, MiB, false);
      io.dropCache(fd, 0, 3 * MiB);
    } finally {
      closeSync(fd);
    }
    const data = readFileSync(path);
    assert.equal(data.length, 3 * MiB);
    assert.ok(allBytes(data.subarray(0, MiB), 0xff));
    assert.ok(allBytes(data.subarray(MiB, 2 * MiB), 0));
    assert.ok(allBytes(data.subarray(2 * MiB), 0xff));
    const ro = openSync(path, 'r');
    try {
      await assert.rejects(
        io.zeroRange(ro, 0, 4096, false),
        (e: NodeJS.ErrnoException) => e.code === 'EBADF' && e.errno === -9,
      );
    } finally {
      closeSync(ro);
    }
  });
});

describe('writeImage onto a regular file', () => {
  it('writes random data with zero holes over 0xFF garbage exactly', async () => {
    const image = makeImage(21 * MiB + 4 * KiB, 7);
    const path = join(dir, 'dirty.raw');
    garbageFile(path, 24 * MiB);
    const result = await writeAndCheck(image, { path, kind: 'file', sizeBytes: 24 * MiB });
    assert.ok(result.zeroBytes > 4 * MiB, `zero runs were found (${result.zeroBytes})`);
    assert.ok(result.dataBytes > 4 * MiB, `data was written (${result.dataBytes})`);
    assert.equal(statSync(path).size, 24 * MiB, 'a file disk keeps its size');
  });

  it('handles other buffer and zero-detection sizes', async () => {
    const image = makeImage(9 * MiB + 512, 11);
    for (const options of [
      { blockSize: MiB, zeroBlockSize: 4 * KiB, inFlight: 1 },
      { blockSize: 16 * MiB, zeroBlockSize: 256 * KiB, inFlight: 4 },
    ]) {
      const path = join(dir, `sizes-${options.blockSize}.raw`);
      garbageFile(path, 10 * MiB);
      await writeAndCheck(image, { path, kind: 'file', sizeBytes: 10 * MiB }, options);
    }
  });

  it('skips zero runs on a known-zero (fresh sparse) file and keeps it sparse', async () => {
    const path = join(dir, 'fresh.raw');
    const fd = openSync(path, 'w');
    ftruncateSync(fd, 32 * MiB);
    closeSync(fd);
    assert.equal(isKnownZero(path), true);
    const image = Buffer.alloc(20 * MiB);
    randomBytes(MiB).copy(image, 3 * MiB);
    randomBytes(100).copy(image, 19 * MiB + 5000);
    const source = join(dir, 'fresh-source.img');
    writeFileSync(source, image);
    const result = await writeImage(chunks(image), { path, kind: 'file', sizeBytes: 32 * MiB }, { knownZero: true });
    assert.equal(result.bytes, 20 * MiB);
    assert.equal(result.dataBytes, MiB + 64 * KiB);
    const cmp = cmpEqual(source, path, 20 * MiB);
    assert.ok(cmp.equal, cmp.output);
    assert.ok(allBytes(readRange(path, 20 * MiB, 12 * MiB), 0));
    assert.ok(
      statSync(path).blocks * 512 <= 2 * MiB,
      `only the data was allocated (${statSync(path).blocks * 512} bytes)`,
    );
    assert.equal(isKnownZero(path), false, 'a written file is no longer known to be zero');
  });

  it('isKnownZero refuses written files, missing paths and devices', () => {
    const path = join(dir, 'written.raw');
    garbageFile(path, 4096);
    assert.equal(isKnownZero(path), false);
    assert.equal(isKnownZero(join(dir, 'missing')), false);
    assert.equal(isKnownZero('/dev/null'), false);
  });

  it('refuses an image larger than the disk without writing beyond its end', async () => {
    const path = join(dir, 'small.raw');
    garbageFile(path, 4 * MiB);
    const image = makeImage(4 * MiB + 4096, 3);
    await assert.rejects(writeImage(chunks(image), { path, kind: 'file', sizeBytes: 4 * MiB }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /larger than the disk/);
      return true;
    });
    assert.equal(statSync(path).size, 4 * MiB, 'the file did not grow');
    // Announced as too large: refused before anything is written at all.
    garbageFile(path, 4 * MiB);
    await assert.rejects(
      writeImage(chunks(image), { path, kind: 'file', sizeBytes: 4 * MiB }, { expectedBytes: image.length }),
      UserError,
    );
    assert.ok(allBytes(readFileSync(path), 0xff), 'nothing was written');
  });

  it('writes sizes that are not a multiple of 512 (data or zero tails)', async () => {
    for (const size of [1, 100, 511, 513, 4095, 64 * KiB + 1, 3 * MiB + 777, 4 * MiB - 1, 4 * MiB + 1]) {
      for (const tail of ['data', 'zero'] as const) {
        const image = makeImage(size, size);
        if (tail === 'zero') image.fill(0, Math.max(0, size - 600));
        else image[size - 1] = 0x5a;
        const path = join(dir, `odd-${size}-${tail}.raw`);
        const diskSize = Math.ceil((size + 1) / MiB) * MiB + MiB;
        garbageFile(path, diskSize);
        await writeAndCheck(image, { path, kind: 'file', sizeBytes: diskSize });
      }
    }
  });

  it('fills the disk exactly when the image has the disk size', async () => {
    const path = join(dir, 'exact.raw');
    garbageFile(path, 5 * MiB + 512);
    const image = makeImage(5 * MiB + 512, 5);
    await writeAndCheck(image, { path, kind: 'file', sizeBytes: 5 * MiB + 512 });
  });

  it('writes nothing for an empty input', async () => {
    const path = join(dir, 'empty.raw');
    garbageFile(path, MiB);
    const result = await writeImage(chunks(Buffer.alloc(0)), { path, kind: 'file', sizeBytes: MiB });
    assert.deepEqual(result, { bytes: 0, dataBytes: 0, zeroBytes: 0 });
    assert.ok(allBytes(readFileSync(path), 0xff));
  });

  it('checks the announced size and passes input errors on', async () => {
    const path = join(dir, 'announced.raw');
    garbageFile(path, 2 * MiB);
    await assert.rejects(
      writeImage(chunks(makeImage(MiB)), { path, kind: 'file', sizeBytes: 2 * MiB }, { expectedBytes: MiB + 1 }),
      /ended after 1048576 bytes, 1048577 were announced/,
    );
    const failure = new Error('decompression failed');
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(5 * KiB).fill(1);
      throw failure;
    }
    await assert.rejects(
      writeImage(broken(), { path, kind: 'file', sizeBytes: 2 * MiB }),
      (e: unknown) => e === failure,
    );
  });

  it('refuses a target of the wrong kind', async () => {
    const path = join(dir, 'kind.raw');
    garbageFile(path, MiB);
    await assert.rejects(
      writeImage(chunks(Buffer.alloc(10)), { path, kind: 'block', sizeBytes: MiB }),
      /not a block device/,
    );
  });

  it('readImageFile: skips holes of a sparse source, reads the rest exactly', async () => {
    const source = join(dir, 'sparse-source.img');
    const size = 30 * MiB + 1234;
    const image = makeImage(size, 99);
    image.fill(0, 5 * MiB, 17 * MiB);
    const fd = openSync(source, 'w');
    ftruncateSync(fd, size);
    for (let p = 0; p < size; p += 64 * KiB) {
      const piece = image.subarray(p, Math.min(size, p + 64 * KiB));
      if (!allBytes(piece, 0)) writeSync(fd, piece, 0, piece.length, p);
    }
    closeSync(fd);
    assert.ok(statSync(source).blocks * 512 < size, 'the source is sparse');
    let zeroChunks = 0;
    const counted = async function* (): AsyncGenerator<Uint8Array> {
      for await (const chunk of readImageFile(source, { chunkSize: MiB, readAhead: 3 })) {
        if (chunk.buffer === zeroChunk(0).buffer) zeroChunks++;
        yield chunk;
      }
    };
    const path = join(dir, 'from-sparse.raw');
    garbageFile(path, 31 * MiB);
    const result = await writeImage(counted(), { path, kind: 'file', sizeBytes: 31 * MiB });
    assert.equal(result.bytes, size);
    assert.ok(zeroChunks > 0, 'holes came as zero chunks');
    const cmp = cmpEqual(source, path, size);
    assert.ok(cmp.equal, cmp.output);
    assert.ok(allBytes(readRange(path, size, 31 * MiB - size), 0xff));
  });
});

const notRoot = process.getuid?.() === 0 ? false : 'needs root (losetup)';

describe('writeImage onto a loop device', { skip: notRoot }, () => {
  const devices: string[] = [];
  const attach = (file: string, args: string[] = []): string => {
    const device = execFileSync('losetup', ['-f', '--show', ...args, file], { encoding: 'utf8' }).trim();
    devices.push(device);
    return device;
  };
  const deviceSize = (device: string): number => {
    const fd = openSync(device, 'r');
    try {
      return directIo().blockDeviceSize(fd);
    } finally {
      closeSync(fd);
    }
  };
  after(() => {
    for (const device of devices) spawnSync('losetup', ['-d', device]);
  });

  for (const dio of ['off', 'on']) {
    it(`writes random data with zero holes over 0xFF garbage exactly (loop direct-io ${dio})`, async () => {
      const backing = join(dir, `loop-${dio}.raw`);
      garbageFile(backing, 24 * MiB);
      const device = attach(backing, [`--direct-io=${dio}`]);
      const size = deviceSize(device);
      assert.equal(size, 24 * MiB);
      const image = makeImage(22 * MiB + 3 * 512, 17);
      const result = await writeAndCheck(image, { path: device, kind: 'block', sizeBytes: size });
      assert.ok(result.zeroBytes > 4 * MiB && result.dataBytes > 4 * MiB);
    });
  }

  it('writes sizes that are not a multiple of 512', async () => {
    const backing = join(dir, 'loop-odd.raw');
    garbageFile(backing, 8 * MiB);
    const device = attach(backing);
    for (const size of [1, 511, 513, 4097, 5 * MiB + 333]) {
      for (const tail of ['data', 'zero'] as const) {
        garbageFile(backing, 8 * MiB);
        spawnSync('blockdev', ['--flushbufs', device]);
        const image = makeImage(size, size + 1);
        if (tail === 'zero') image.fill(0, Math.max(0, size - 300));
        else image[size - 1] = 0xa5;
        await writeAndCheck(image, { path: device, kind: 'block', sizeBytes: 8 * MiB });
      }
    }
  });

  it('refuses an image larger than the device; nothing beyond the device end changes', async () => {
    const backing = join(dir, 'loop-limit.raw');
    garbageFile(backing, 8 * MiB);
    const device = attach(backing, ['--sizelimit', String(6 * MiB)]);
    assert.equal(deviceSize(device), 6 * MiB);
    const image = makeImage(7 * MiB, 23);
    image.fill(0x11, 0, 4096);
    await assert.rejects(writeImage(chunks(image), { path: device, kind: 'block', sizeBytes: 6 * MiB }), UserError);
    spawnSync('losetup', ['-d', device]);
    devices.splice(devices.indexOf(device), 1);
    const data = readFileSync(backing);
    assert.ok(allBytes(data.subarray(6 * MiB), 0xff), 'the backing file beyond the device end is untouched');
    // A disk size claimed larger than the device is refused up front.
    const other = attach(backing, ['--sizelimit', String(6 * MiB)]);
    await assert.rejects(
      writeImage(chunks(Buffer.alloc(10)), { path: other, kind: 'block', sizeBytes: 8 * MiB }),
      /fewer than/,
    );
  });

  it('writes an empty input as nothing and a known-zero claim skips zeroing', async () => {
    const backing = join(dir, 'loop-empty.raw');
    garbageFile(backing, 4 * MiB);
    const device = attach(backing);
    const result = await writeImage(chunks(Buffer.alloc(0)), { path: device, kind: 'block', sizeBytes: 4 * MiB });
    assert.deepEqual(result, { bytes: 0, dataBytes: 0, zeroBytes: 0 });
    assert.ok(allBytes(readFileSync(backing), 0xff));
    // knownZero is the caller's promise: zero runs are then left alone (here: still 0xFF).
    const image = Buffer.alloc(2 * MiB);
    image.fill(7, 0, 100);
    await writeImage(chunks(image), { path: device, kind: 'block', sizeBytes: 4 * MiB }, { knownZero: true });
    const data = readRange(device, 0, 2 * MiB);
    assert.ok(data.subarray(0, 100).every((b) => b === 7));
    assert.ok(allBytes(data.subarray(64 * KiB), 0xff), 'zero runs were skipped, not zeroed');
  });
});
