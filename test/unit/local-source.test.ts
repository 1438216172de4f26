/**
 * The local image source opens the image once, inside IMAGE_DIR, and every later reader
 * (the stream, the O_DIRECT reader, the decompressors, qemu-img) gets that open file: a
 * name swapped after the checks (for another file, or for a link leading out) changes
 * nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readImageFile } from '../../src/disk/image-file-reader.ts';
import { localSource } from '../../src/image/sources/local.ts';
import type { ByteStream } from '../../src/image/stream-util.ts';

const MiB = 1024 * 1024;

async function collect(stream: ByteStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function node(): { imageDir: string; outside: string; settings: Parameters<typeof localSource.open>[1] } {
  const root = mkdtempSync(join(tmpdir(), 'snf-local-'));
  const imageDir = join(root, 'images');
  const outside = join(root, 'outside');
  mkdirSync(imageDir);
  mkdirSync(outside);
  return {
    imageDir,
    outside,
    settings: {
      imageDir,
      httpTimeoutSeconds: 5,
      httpRetries: 0,
      downloadTimeoutSeconds: 60,
      downloadMinSpeed: 0,
      downloadMaxBytes: 64 * MiB,
      tls: { caFile: '', verify: true },
    },
  };
}

describe('local image source', () => {
  it('reads the file it checked, even when the name is replaced afterwards', async () => {
    const { imageDir, outside, settings } = node();
    const original = randomBytes(2 * MiB);
    const planted = randomBytes(2 * MiB);
    writeFileSync(join(imageDir, 'disk.img'), original);
    writeFileSync(join(outside, 'host-secret'), planted);
    const opened = await localSource.open('disk.img', settings);
    try {
      // Swap the name for a link out of IMAGE_DIR: by name, every reader would now read the host file.
      rmSync(join(imageDir, 'disk.img'));
      symlinkSync(join(outside, 'host-secret'), join(imageDir, 'disk.img'));
      assert.ok((await collect(opened.stream())).equals(original), 'stream()');
      assert.ok(opened.localPath !== undefined);
      assert.ok(
        (await collect(readImageFile(opened.localPath, { sparse: false }))).equals(original),
        'localPath (O_DIRECT reader, qemu-img, decompressors)',
      );
    } finally {
      await opened.close();
    }
  });

  it('reads the file it checked when a directory on the path is swapped for a link leading out', async () => {
    const { imageDir, outside, settings } = node();
    const original = randomBytes(MiB);
    mkdirSync(join(imageDir, 'debian'));
    writeFileSync(join(imageDir, 'debian', 'disk.img'), original);
    mkdirSync(join(outside, 'debian'));
    writeFileSync(join(outside, 'debian', 'disk.img'), randomBytes(MiB));
    const opened = await localSource.open('debian/disk.img', settings);
    try {
      renameSync(join(imageDir, 'debian'), join(imageDir, 'moved'));
      symlinkSync(join(outside, 'debian'), join(imageDir, 'debian'));
      assert.ok(opened.localPath !== undefined);
      assert.ok((await collect(readImageFile(opened.localPath, { sparse: false }))).equals(original));
      assert.ok((await collect(opened.stream())).equals(original));
    } finally {
      await opened.close();
    }
  });

  it('still refuses a link inside IMAGE_DIR that leads out, and non-files', async () => {
    const { imageDir, outside, settings } = node();
    writeFileSync(join(outside, 'host-secret'), 'x');
    symlinkSync(join(outside, 'host-secret'), join(imageDir, 'out.img'));
    mkdirSync(join(imageDir, 'dir.img'));
    await assert.rejects(
      localSource.open('out.img', settings),
      /^UserError: img_id: local image 'out\.img' resolves outside IMAGE_DIR /,
    );
    await assert.rejects(
      localSource.open('dir.img', settings),
      /^UserError: img_id: local image 'dir\.img' is not a regular file$/,
    );
    await assert.rejects(
      localSource.open('nope.img', settings),
      /^UserError: img_id: local image 'nope\.img' not found in IMAGE_DIR /,
    );
  });
});
