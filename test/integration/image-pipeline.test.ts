/**
 * snf-image deploy / create with the built binary: every format and source onto a dirty
 * target compares equal to the raw image; every kind of bad input fails with one clear
 * line, and inputs known bad before writing leave the disk untouched.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { binaryMissingReason, notRootReason, runScript } from '../support/binary.ts';
import { makeNode } from '../support/node-fixture.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const MiB = 1024 * 1024;
const node = makeNode('HTTP_RETRIES=1\nHTTP_TIMEOUT=5\n');
const raw = join(node.imageDir, 'disk.img');
let server: Server;
let base = '';
let rawSha256 = '';

function makeImage(): void {
  // 24 MiB: MBR signature, data extents between zero runs, a final odd-sized data tail.
  const img = Buffer.alloc(24 * MiB);
  for (let at = 0; at < img.length; at += 3 * MiB) randomBytes(700 * 1024).copy(img, at);
  img[510] = 0x55;
  img[511] = 0xaa;
  writeFileSync(raw, img);
  rawSha256 = createHash('sha256').update(img).digest('hex');
  const tools: Array<[string, string[]]> = [
    ['zstd', ['-q', '-f', raw, '-o', `${raw}.zst`]],
    ['gzip', ['-kf', raw]],
    ['xz', ['-kf', '-T0', raw]],
    ['bzip2', ['-kf', raw]],
    ['qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, join(node.imageDir, 'disk.qcow2')]],
    ['qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', raw, join(node.imageDir, 'disk.vmdk')]],
    ['qemu-img', ['convert', '-f', 'raw', '-O', 'vdi', raw, join(node.imageDir, 'disk.vdi')]],
    ['qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', raw, join(node.imageDir, 'disk.vhdx')]],
    ['qemu-img', ['create', '-q', '-f', 'qcow2', '-b', raw, '-F', 'raw', join(node.imageDir, 'backed.qcow2')]],
  ];
  for (const [tool, args] of tools) execFileSync(tool, args);
  writeFileSync(join(node.imageDir, 'truncated.img.zst'), readFileSync(`${raw}.zst`).subarray(0, 200 * 1024));
  writeFileSync(
    join(node.imageDir, 'corrupt.img.gz'),
    Buffer.concat([readFileSync(`${raw}.gz`).subarray(0, 4096), randomBytes(100000)]),
  );
  writeFileSync(
    join(node.imageDir, 'corrupt.img.zst'),
    Buffer.concat([readFileSync(`${raw}.zst`).subarray(0, 4096), randomBytes(100000)]),
  );
  writeFileSync(join(node.imageDir, 'truncated.img.xz'), readFileSync(`${raw}.xz`).subarray(0, 100 * 1024));
  writeFileSync(join(node.imageDir, 'truncated.img.bz2'), readFileSync(`${raw}.bz2`).subarray(0, 100 * 1024));
}

function dirtyFile(name: string, size: number): string {
  const path = join(node.root, name);
  writeFileSync(path, Buffer.alloc(size, 0xff));
  return path;
}

function sha256Prefix(path: string, bytes: number): string {
  const hash = createHash('sha256');
  const fd = readFileSync(path).subarray(0, bytes);
  return hash.update(fd).digest('hex');
}

async function deploy(disk: string, imgId: string, imgFormat: string, extra: Record<string, string> = {}) {
  return runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: imgId,
      OSP_IMG_FORMAT: imgFormat,
      OSP_IMG_PROPERTIES: JSON.stringify({ EXCLUDE_ALL_TASKS: 'yes', ...JSON.parse(extra.props ?? '{}') }),
      DISK_0_PATH: disk,
      SNF_IMAGE_CONFIG: node.configFile,
      ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'props')),
    },
  });
}

const skip = binaryMissingReason();

before(async () => {
  if (skip) return;
  makeImage();
  server = createServer((req, res) => {
    const name = (req.url ?? '/').slice(1);
    if (name === 'error') {
      res.statusCode = 500;
      res.end();
      return;
    }
    if (name === 'drop.img') {
      res.setHeader('content-length', String(24 * MiB));
      res.write(readFileSync(raw).subarray(0, 2 * MiB), () => req.socket.destroy());
      return;
    }
    if (name === 'SHA256SUMS') {
      res.end(`${rawSha256}  disk.img\n${'0'.repeat(64)}  disk.img.zst\n`);
      return;
    }
    try {
      const data = readFileSync(join(node.imageDir, name));
      res.setHeader('content-length', String(data.length));
      res.end(data);
    } catch {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server?.closeAllConnections();
  server?.close();
});

describe('image pipeline (built binary, create with a Ganeti environment)', { skip }, () => {
  const good: Array<[string, string, string]> = [
    ['raw diskdump', 'disk.img', 'diskdump'],
    ['zstd', 'disk.img.zst', 'diskdump'],
    ['gzip', 'disk.img.gz', 'diskdump'],
    ['xz', 'disk.img.xz', 'diskdump'],
    ['bzip2', 'disk.img.bz2', 'diskdump'],
    ['qcow2', 'disk.qcow2', 'qcow2'],
    ['vmdk', 'disk.vmdk', 'vmdk'],
    ['vdi', 'disk.vdi', 'vdi'],
    ['vhdx', 'disk.vhdx', 'vhdx'],
  ];
  for (const [label, id, format] of good) {
    it(`${label}: the dirty disk equals the raw image, the rest is zeroed`, async () => {
      const disk = dirtyFile(`good-${label}`, 32 * MiB);
      const r = await deploy(disk, id, format);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256Prefix(disk, 24 * MiB), rawSha256);
      assert.ok(
        readFileSync(disk)
          .subarray(24 * MiB)
          .every((b) => b === 0),
        'tail zeroed',
      );
    });
  }

  it('http source (and its SHA256SUMS sidecar) and an http qcow2', async () => {
    for (const [id, format] of [
      [`${base}/disk.img`, 'diskdump'],
      [`${base}/disk.qcow2`, 'qcow2'],
      [`${base}/disk.img.gz`, 'diskdump'],
    ] as const) {
      const disk = dirtyFile('http', 32 * MiB);
      const r = await deploy(disk, id, format);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256Prefix(disk, 24 * MiB), rawSha256, id);
    }
  });

  it('credentials in an http img_id never reach the log', async () => {
    const disk = dirtyFile('http-credentials', 32 * MiB);
    const r = await deploy(disk, `${base.replace('http://', 'http://admin:pw-in-img-id@')}/disk.img`, 'diskdump');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256Prefix(disk, 24 * MiB), rawSha256);
    assert.match(
      r.stderr,
      new RegExp(`deploying image .*img_id=${base.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/disk\\.img`),
    );
    assert.ok(
      !r.stderr.includes('pw-in-img-id'),
      r.stderr
        .split('\n')
        .filter((l) => l.includes('pw-in-img-id'))
        .join('\n'),
    );
  });

  it('img_id=null leaves the disk as it is', async () => {
    const disk = dirtyFile('null', 4 * MiB);
    const r = await deploy(disk, 'null', 'diskdump');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(disk).every((b) => b === 0xff));
  });

  const refusedBeforeWriting: Array<[string, string, string, RegExp, Record<string, string>?]> = [
    ['missing image', 'nope.img', 'diskdump', /ERROR img_id: local image 'nope\.img' not found in IMAGE_DIR/],
    [
      'path escaping IMAGE_DIR',
      'local://../snf-image.conf',
      'diskdump',
      /ERROR img_id: local image path escapes IMAGE_DIR/,
    ],
    [
      'HTTP 404',
      '%BASE%/missing.img',
      'diskdump',
      /ERROR img_id: http:\/\/127\.0\.0\.1:\d+\/missing\.img answered HTTP 404/,
    ],
    ['HTTP 500', '%BASE%/error', 'diskdump', /ERROR img_id: .* answered HTTP 500/],
    [
      'wrong declared format (qcow2 as diskdump)',
      'disk.qcow2',
      'diskdump',
      /ERROR img_format: declared diskdump but the image is a qcow2 image \(use img_format=qcow2\)/,
    ],
    [
      'wrong declared format (raw as vmdk)',
      'disk.img',
      'vmdk',
      /ERROR img_format: declared vmdk but the image is a raw disk with an MBR/,
    ],
    ['qcow2 with a backing file', 'backed.qcow2', 'qcow2', /ERROR img_id: the qcow2 image has a backing file/],
    [
      'image larger than the disk',
      'disk.img',
      'diskdump',
      /ERROR img_id: the image \(25165824 bytes\) is larger than the disk \(8388608 bytes\)/,
    ],
  ];
  for (const [label, id, format, message] of refusedBeforeWriting) {
    it(`refuses ${label} with one line and nothing written`, async () => {
      const disk = dirtyFile(
        `bad-${label.replace(/\W+/g, '-')}`,
        label.startsWith('image larger') ? 8 * MiB : 32 * MiB,
      );
      const r = await deploy(disk, id.replace('%BASE%', base), format);
      assert.equal(r.code, 1);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.split('\n').filter((l) => / ERROR /.test(l)).length, 1, r.stderr);
      assert.ok(
        readFileSync(disk).every((b) => b === 0xff),
        'disk untouched',
      );
    });
  }

  const failsWhileStreaming: Array<[string, string, RegExp, Record<string, string>?]> = [
    ['truncated zstd stream', 'truncated.img.zst', /ERROR img_id: the zstd stream is corrupt or truncated/],
    ['corrupt gzip stream', 'corrupt.img.gz', /ERROR img_id: the gzip stream is corrupt or truncated/],
    ['corrupt zstd stream', 'corrupt.img.zst', /ERROR img_id: the zstd stream is corrupt or truncated/],
    ['truncated xz stream', 'truncated.img.xz', /ERROR img_id: the xz stream is corrupt or truncated/],
    ['truncated bzip2 stream', 'truncated.img.bz2', /ERROR img_id: the bzip2 stream is corrupt or truncated/],
    [
      'connection dropped mid-stream',
      '%BASE%/drop.img',
      /ERROR img_id: download of .*drop\.img failed after \d+ bytes/,
    ],
    [
      'checksum mismatch (property)',
      'disk.img',
      /ERROR img_id: sha256 checksum mismatch \(expected 0000000000000000… from the SHA256 image property/,
      { props: JSON.stringify({ SHA256: '0'.repeat(64) }) },
    ],
    ...(['zst', 'gz', 'xz', 'bz2'] as const).map((ext): [string, string, RegExp, Record<string, string>] => [
      `checksum mismatch (property, .${ext} image: the mismatch, not a decompressor complaint)`,
      `disk.img.${ext}`,
      /ERROR img_id: sha256 checksum mismatch \(expected 0000000000000000… from the SHA256 image property/,
      { props: JSON.stringify({ SHA256: '0'.repeat(64) }) },
    ]),
    [
      'checksum mismatch (SHA256SUMS sidecar)',
      '%BASE%/disk.img.zst',
      /ERROR img_id: sha256 checksum mismatch .* from SHA256SUMS next to the image/,
    ],
  ];
  for (const [label, id, message, extra] of failsWhileStreaming) {
    it(`fails on a ${label} with one clear line`, async () => {
      const disk = dirtyFile(`stream-${label.replace(/\W+/g, '-')}`, 32 * MiB);
      const r = await deploy(disk, id.replace('%BASE%', base), 'diskdump', extra ?? {});
      assert.equal(r.code, 1);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.split('\n').filter((l) => / ERROR /.test(l)).length, 1, r.stderr);
    });
  }

  it('a matching checksum passes', async () => {
    const disk = dirtyFile('sum-ok', 32 * MiB);
    const r = await deploy(disk, `${base}/disk.img`, 'diskdump');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /image checksum will be verified algorithm=sha256/);
  });

  it('refuses a disk path that is neither a block device nor a file', async () => {
    const r = await deploy(node.root, 'disk.img', 'diskdump');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERROR DISK_0_PATH .*: is neither a block device nor a regular file/);
  });

  describe('onto a dirty loop device', { skip: notRootReason() }, () => {
    it('every format gives a disk equal to the raw image', async () => {
      const file = dirtyFile('loop-backing', 32 * MiB);
      const loop = execFileSync('losetup', ['-f', '--show', file]).toString().trim();
      try {
        for (const [id, format] of [
          ['disk.img', 'diskdump'],
          ['disk.img.zst', 'diskdump'],
          ['disk.img.gz', 'diskdump'],
          ['disk.img.xz', 'diskdump'],
          ['disk.img.bz2', 'diskdump'],
          ['disk.qcow2', 'qcow2'],
          ['disk.vmdk', 'vmdk'],
          ['disk.vdi', 'vdi'],
          ['disk.vhdx', 'vhdx'],
        ] as const) {
          execFileSync('dd', ['if=/dev/zero', `of=${loop}`, 'bs=1M', 'count=32', 'status=none']);
          execFileSync('sh', [
            '-c',
            `tr '\\000' '\\377' < /dev/zero | dd of=${loop} bs=1M count=32 iflag=fullblock status=none`,
          ]);
          const r = await deploy(loop, id, format);
          assert.equal(r.code, 0, r.stderr);
          const got = createHash('sha256');
          for await (const chunk of createReadStream(loop, { start: 0, end: 24 * MiB - 1 }))
            got.update(chunk as Buffer);
          assert.equal(got.digest('hex'), rawSha256, id);
        }
      } finally {
        execFileSync('losetup', ['-d', loop]);
      }
    });
  });
});

describe('image cache (built binary)', { skip }, () => {
  // The pipeline tests above deploy http images with the shared node: point its cache at a
  // temporary directory too, so no test touches the default IMAGE_CACHE_DIR.
  appendFileSync(node.configFile, `IMAGE_CACHE_DIR=${join(node.root, 'image-cache')}\n`);

  const scratch = mkdtempSync(join(tmpdir(), 'snf-cache-it-'));
  const cacheDir = join(scratch, 'cache', 'images');
  const tmpDir = join(scratch, 'tmp');
  mkdirSync(tmpDir);
  const cachedNode = makeNode(`HTTP_RETRIES=1\nHTTP_TIMEOUT=5\nIMAGE_CACHE_DIR=${cacheDir}\nIMAGE_TMP_DIR=${tmpDir}\n`);
  const uncachedNode = makeNode(
    `HTTP_RETRIES=1\nHTTP_TIMEOUT=5\nIMAGE_CACHE=no\nIMAGE_CACHE_DIR=${join(scratch, 'unused')}\n`,
  );
  let cacheServer: Server;
  let cacheBase = '';
  const full = new Map<string, number>();
  const notModified = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

  const keyFiles = (path: string): string[] => {
    const key = createHash('sha256').update(`${cacheBase}${path}`).digest('hex');
    return existsSync(cacheDir) ? readdirSync(cacheDir).filter((f) => f.startsWith(key)) : [];
  };

  const deployOn = (
    fixture: typeof node,
    disk: string,
    imgId: string,
    imgFormat: string,
    props: Record<string, string> = {},
  ) =>
    runScript('create', {
      env: {
        ...CREATE_ENV,
        OSP_IMG_ID: imgId,
        OSP_IMG_FORMAT: imgFormat,
        OSP_IMG_PROPERTIES: JSON.stringify({ EXCLUDE_ALL_TASKS: 'yes', ...props }),
        DISK_0_PATH: disk,
        SNF_IMAGE_CONFIG: fixture.configFile,
      },
    });

  before(async () => {
    // Serves the images of the shared node with an ETag, answering If-None-Match with 304.
    cacheServer = createServer((req, res) => {
      const path = req.url ?? '/';
      let data: Buffer;
      try {
        data = readFileSync(join(node.imageDir, (path.split('?')[0] ?? '').slice(1)));
      } catch {
        res.statusCode = 404;
        res.end();
        return;
      }
      const etag = `"${createHash('sha256').update(data).digest('hex').slice(0, 16)}"`;
      res.setHeader('etag', etag);
      if (req.headers['if-none-match'] === etag) {
        bump(notModified, path);
        res.statusCode = 304;
        res.end();
        return;
      }
      bump(full, path);
      res.setHeader('content-length', String(data.length));
      res.end(data);
    });
    await new Promise<void>((resolve) => cacheServer.listen(0, '127.0.0.1', resolve));
    cacheBase = `http://127.0.0.1:${(cacheServer.address() as AddressInfo).port}`;
  });

  after(() => {
    cacheServer?.closeAllConnections();
    cacheServer?.close();
  });

  it('an http image is downloaded once into the cache, then revalidated (304) and written from it', async () => {
    for (const round of [1, 2]) {
      const disk = dirtyFile(`cache-raw-${round}`, 32 * MiB);
      const r = await deployOn(cachedNode, disk, `${cacheBase}/disk.img`, 'diskdump');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256Prefix(disk, 24 * MiB), rawSha256);
      assert.ok(
        readFileSync(disk)
          .subarray(24 * MiB)
          .every((b) => b === 0),
        'tail zeroed',
      );
      if (round === 2) assert.match(r.stderr, /image cache hit \(the server says it is unchanged\)/);
    }
    assert.equal(full.get('/disk.img'), 1);
    assert.equal(notModified.get('/disk.img'), 1);
    assert.equal(keyFiles('/disk.img').length, 2, 'metadata and image');
    assert.equal(statSync(cacheDir).mode & 0o777, 0o700);
  });

  it('a remote qcow2 converts straight from the cache file (no temporary download)', async () => {
    for (const round of [1, 2]) {
      const disk = dirtyFile(`cache-qcow2-${round}`, 32 * MiB);
      const r = await deployOn(cachedNode, disk, `${cacheBase}/disk.qcow2`, 'qcow2');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256Prefix(disk, 24 * MiB), rawSha256);
      assert.doesNotMatch(r.stderr, /need random access: downloading first/);
      assert.match(
        r.stderr,
        new RegExp(`image source opened .*cached: ${cacheDir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/`),
      );
    }
    assert.equal(full.get('/disk.qcow2'), 1);
    assert.equal(notModified.get('/disk.qcow2'), 1);
    assert.deepEqual(readdirSync(tmpDir), []);
  });

  it('concurrent deployments of one URL download it once', async () => {
    const disks = [1, 2, 3, 4].map((i) => dirtyFile(`cache-concurrent-${i}`, 32 * MiB));
    const results = await Promise.all(
      disks.map((disk) => deployOn(cachedNode, disk, `${cacheBase}/disk.img.zst`, 'diskdump')),
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256Prefix(disks[i] as string, 24 * MiB), rawSha256);
    }
    assert.equal(full.get('/disk.img.zst'), 1);
    assert.deepEqual(
      readdirSync(cacheDir).filter((f) => /\.(lock|part)$|\.use-/.test(f)),
      [],
      'no lock, partial file or use marker left',
    );
  });

  it('a checksum mismatch fails the deployment and caches nothing (streamed and qemu-img images)', async () => {
    for (const [path, format] of [
      ['/disk.img?mismatch', 'diskdump'],
      ['/disk.vdi', 'vdi'],
    ] as const) {
      const disk = dirtyFile('cache-mismatch', 32 * MiB);
      const r = await deployOn(cachedNode, disk, `${cacheBase}${path}`, format, { SHA256: '0'.repeat(64) });
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /ERROR img_id: sha256 checksum mismatch \(expected 0000000000000000… from the SHA256 image property/,
      );
      assert.equal(r.stderr.split('\n').filter((l) => / ERROR /.test(l)).length, 1, r.stderr);
      assert.deepEqual(keyFiles(path), [], path);
      assert.equal(full.get(path), 1);
    }
  });

  it('with IMAGE_CACHE=no every deployment downloads and no cache directory appears', async () => {
    for (const round of [1, 2]) {
      const disk = dirtyFile(`nocache-${round}`, 32 * MiB);
      const r = await deployOn(uncachedNode, disk, `${cacheBase}/disk.img.gz`, 'diskdump');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256Prefix(disk, 24 * MiB), rawSha256);
    }
    assert.equal(full.get('/disk.img.gz'), 2);
    assert.equal(existsSync(join(scratch, 'unused')), false);
  });

  it('the shared node of the pipeline tests above has its own temporary cache directory', async () => {
    const r = await runScript('snf-image', {
      args: ['config'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SNF_IMAGE_CONFIG: node.configFile },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), new RegExp(`^IMAGE_CACHE_DIR=${join(node.root, 'image-cache')}  #`, 'm'));
    assert.match(r.stdout.toString(), /^IMAGE_CACHE=yes$/m);
  });
});
