/**
 * The node-local image cache against a 127.0.0.1 HTTP server that counts its requests:
 * download + publish, revalidation (304), re-download on change, one download for ten
 * concurrent deployments, nothing published from an interrupted or mismatching download,
 * LRU eviction that spares entries in use, corrupted entries discarded, stale locks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { configureLogging } from '../../src/log/logger.ts';
import { ImageCache, type CacheMeta, type CacheOptions } from '../../src/image/cache.ts';
import type { ExpectedDigest } from '../../src/image/checksum.ts';
import { openCachedHttp, type CachedImage, type CachedOpenOptions } from '../../src/image/sources/cached-http.ts';

const MiB = 1024 * 1024;

interface Resource {
  data: Buffer;
  etag?: string;
  lastModified?: string;
  ranges?: boolean;
  /** Drop the connection after part of the body: once (then resumable) or always. */
  drop?: 'once' | 'always';
  /** No Content-Length (chunked transfer). */
  chunked?: boolean;
}

interface Counts {
  total: number;
  /** Full bodies sent (200). */
  full: number;
  notModified: number;
  conditional: number;
}

const resources = new Map<string, Resource>();
const counts = new Map<string, Counts>();
const logLines: string[] = [];
let server: Server;
let base = '';
let origin = '';

function count(path: string): Counts {
  let c = counts.get(path);
  if (!c) {
    c = { total: 0, full: 0, notModified: 0, conditional: 0 };
    counts.set(path, c);
  }
  return c;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

before(async () => {
  configureLogging({ sink: { write: (line) => void logLines.push(line) } });
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    const c = count(path);
    c.total += 1;
    const r = resources.get(path);
    if (!r) {
      res.statusCode = 404;
      res.end();
      return;
    }
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    if (inm !== undefined || ims !== undefined) c.conditional += 1;
    if (r.etag) res.setHeader('etag', r.etag);
    if (r.lastModified) res.setHeader('last-modified', r.lastModified);
    if ((inm !== undefined && inm === r.etag) || (inm === undefined && ims !== undefined && ims === r.lastModified)) {
      c.notModified += 1;
      res.statusCode = 304;
      res.end();
      return;
    }
    const range = req.headers.range;
    const start = range ? Number(/bytes=(\d+)-/.exec(range)?.[1] ?? 0) : 0;
    if (r.ranges) res.setHeader('accept-ranges', 'bytes');
    res.statusCode = range && r.ranges ? 206 : 200;
    const body = r.data.subarray(range && r.ranges ? start : 0);
    if (!r.chunked) res.setHeader('content-length', String(body.length));
    if (!range) c.full += 1;
    if (r.drop && !range) {
      if (r.drop === 'once') delete r.drop;
      res.write(body.subarray(0, Math.floor(body.length / 3)), () => req.socket.destroy());
      return;
    }
    if (r.chunked) res.write(body);
    res.end(r.chunked ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  base = `http://${origin}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

beforeEach(() => {
  logLines.length = 0;
});

const settings = {
  imageDir: '/nonexistent',
  httpTimeoutSeconds: 5,
  httpRetries: 2,
  downloadTimeoutSeconds: 600,
  downloadMinSpeed: 0,
  downloadMaxBytes: 1024 * 1024 * 1024,
  tls: { caFile: '', verify: true },
};

function newCache(maxBytes = 1024 * MiB, verify = false): CacheOptions {
  return { dir: join(mkdtempSync(join(tmpdir(), 'snf-cache-test-')), 'images'), maxBytes, verify };
}

function serve(path: string, resource: Resource): Buffer {
  resources.set(path, resource);
  counts.delete(path);
  return resource.data;
}

async function fetchAll(
  url: string,
  cache: CacheOptions,
  options: CachedOpenOptions = {},
): Promise<{ data: Buffer; opened: CachedImage }> {
  const opened = await openCachedHttp(url, settings, cache, options);
  const chunks: Uint8Array[] = [];
  try {
    for await (const chunk of opened.stream()) chunks.push(chunk);
  } finally {
    await opened.close();
  }
  return { data: Buffer.concat(chunks), opened };
}

function keyOf(path: string, userinfo = ''): string {
  return ImageCache.keyFor(new URL(`http://${userinfo}${origin}${path}`));
}

function files(cache: CacheOptions): string[] {
  return readdirSync(cache.dir).sort();
}

function meta(cache: CacheOptions, path: string, userinfo = ''): CacheMeta {
  return JSON.parse(readFileSync(join(cache.dir, `${keyOf(path, userinfo)}.json`), 'utf8')) as CacheMeta;
}

/** The entry of `path` as published: metadata and data file only, nothing in progress. */
function assertPublished(cache: CacheOptions, path: string, data: Buffer, userinfo = ''): void {
  const key = keyOf(path, userinfo);
  const own = files(cache).filter((f) => f.startsWith(key) && !f.includes('.use-'));
  assert.deepEqual(own, [`${key}.${sha256(data)}`, `${key}.json`].sort());
  assert.equal(readFileSync(join(cache.dir, `${key}.${sha256(data)}`)).equals(data), true);
  const m = meta(cache, path, userinfo);
  assert.equal(m.size, data.length);
  assert.equal(m.sha256, sha256(data));
}

function assertNothingFor(cache: CacheOptions, path: string): void {
  assert.deepEqual(
    files(cache).filter((f) => f.startsWith(keyOf(path))),
    [],
  );
}

describe('image cache', () => {
  it('first deployment downloads and publishes (0600 files, 0700 directory, no credentials); the second revalidates (304) and does not download', async () => {
    const cache = newCache();
    const data = serve('/a.img', { data: randomBytes(3 * MiB + 17), etag: '"a1"' });
    const url = `http://user:secret@${origin}/a.img`;
    const first = await fetchAll(url, cache);
    assert.equal(first.opened.via, 'download');
    assert.ok(first.data.equals(data));
    assert.equal(count('/a.img').full, 1);
    assertPublished(cache, '/a.img', data, 'user:secret@');
    assert.equal(statSync(cache.dir).mode & 0o777, 0o700);
    for (const f of files(cache)) assert.equal(statSync(join(cache.dir, f)).mode & 0o777, 0o600, f);
    const m = meta(cache, '/a.img', 'user:secret@');
    assert.equal(m.url, `${base}/a.img`);
    assert.equal(m.etag, '"a1"');
    assert.doesNotMatch(
      readFileSync(join(cache.dir, `${keyOf('/a.img', 'user:secret@')}.json`), 'utf8'),
      /secret|user/,
    );

    const second = await fetchAll(url, cache);
    assert.equal(second.opened.via, 'hit');
    assert.equal(second.opened.localPath, join(cache.dir, `${keyOf('/a.img', 'user:secret@')}.${sha256(data)}`));
    assert.ok(second.data.equals(data));
    assert.deepEqual(count('/a.img'), { total: 2, full: 1, notModified: 1, conditional: 1 });
    assert.ok(meta(cache, '/a.img', 'user:secret@').lastUsed >= m.lastUsed);
    assert.deepEqual(
      files(cache).filter((f) => /\.(lock|part)$|\.use-/.test(f)),
      [],
      'no lock, partial file or use marker left',
    );
  });

  it('URLs that differ only in their credentials never share an entry (and no credential is stored)', async () => {
    const cache = newCache();
    // The server answers If-None-Match before it looks at the credentials, as caches in front of many servers do.
    const data = serve('/private.img', { data: randomBytes(MiB + 5), etag: '"p1"' });
    const alice = await fetchAll(`http://alice:alice-pw@${origin}/private.img`, cache);
    assert.ok(alice.data.equals(data));
    const mallory = await fetchAll(`http://mallory:wrong-pw@${origin}/private.img`, cache);
    assert.notEqual(mallory.opened.via, 'hit', 'served from the entry fetched with other credentials');
    assert.deepEqual(
      { full: count('/private.img').full, notModified: count('/private.img').notModified },
      { full: 2, notModified: 0 },
    );
    const metas = files(cache).filter((f) => f.endsWith('.json'));
    assert.equal(metas.length, 2, files(cache).join(' '));
    for (const f of metas) assert.doesNotMatch(readFileSync(join(cache.dir, f), 'utf8'), /alice|mallory|-pw/);
    // The same credentials again: a hit on their own entry.
    assert.equal((await fetchAll(`http://alice:alice-pw@${origin}/private.img`, cache)).opened.via, 'hit');
  });

  it('revalidates with If-Modified-Since when there is no ETag', async () => {
    const cache = newCache();
    const data = serve('/lm.img', { data: randomBytes(MiB), lastModified: 'Tue, 01 Jul 2025 10:00:00 GMT' });
    await fetchAll(`${base}/lm.img`, cache);
    const again = await fetchAll(`${base}/lm.img`, cache);
    assert.equal(again.opened.via, 'hit');
    assert.ok(again.data.equals(data));
    assert.deepEqual(count('/lm.img'), { total: 2, full: 1, notModified: 1, conditional: 1 });
  });

  it('an ETag change re-downloads and replaces the entry', async () => {
    const cache = newCache();
    const old = serve('/b.img', { data: randomBytes(2 * MiB), etag: '"b1"' });
    await fetchAll(`${base}/b.img`, cache);
    const fresh = randomBytes(2 * MiB + 5);
    resources.set('/b.img', { data: fresh, etag: '"b2"' });
    const again = await fetchAll(`${base}/b.img`, cache);
    assert.equal(again.opened.via, 'download');
    assert.ok(again.data.equals(fresh));
    assert.equal(count('/b.img').full, 2);
    assertPublished(cache, '/b.img', fresh);
    assert.ok(!files(cache).includes(`${keyOf('/b.img')}.${sha256(old)}`), 'the old version is removed');
    assert.equal(meta(cache, '/b.img').etag, '"b2"');
    assert.equal((await fetchAll(`${base}/b.img`, cache)).opened.via, 'hit');
  });

  it('ten concurrent deployments of one URL download it once', async () => {
    const cache = newCache();
    const data = serve('/c.img', { data: randomBytes(8 * MiB), etag: '"c1"' });
    const results = await Promise.all(Array.from({ length: 10 }, () => fetchAll(`${base}/c.img`, cache)));
    for (const r of results) assert.ok(r.data.equals(data));
    assert.equal(count('/c.img').full, 1);
    assert.equal(results.filter((r) => r.opened.via === 'download').length, 1);
    assert.equal(results.filter((r) => r.opened.via === 'hit').length, 9);
    assertPublished(cache, '/c.img', data);
  });

  it('an interrupted download publishes nothing (and leaves no lock or partial file)', async () => {
    const cache = newCache();
    serve('/drop.img', { data: randomBytes(3 * MiB), etag: '"d1"', drop: 'always' });
    await assert.rejects(
      fetchAll(`${base}/drop.img`, cache),
      /img_id: download of .*drop\.img failed after \d+ bytes .*does not allow resuming/,
    );
    assert.deepEqual(files(cache), []);
  });

  it('a download resumed with a Range request is published whole', async () => {
    const cache = newCache();
    const data = serve('/resume.img', { data: randomBytes(3 * MiB), etag: '"r1"', ranges: true, drop: 'once' });
    const r = await fetchAll(`${base}/resume.img`, cache);
    assert.ok(r.data.equals(data));
    assertPublished(cache, '/resume.img', data);
  });

  it('a checksum mismatch publishes nothing; a matching one publishes; a hit checks the recorded sha256', async () => {
    const cache = newCache();
    const data = serve('/sum.img', { data: randomBytes(MiB), etag: '"s1"' });
    const wrong: ExpectedDigest = { algorithm: 'sha256', hex: '0'.repeat(64), from: 'the SHA256 image property' };
    await assert.rejects(
      fetchAll(`${base}/sum.img`, cache, { digest: wrong }),
      /img_id: sha256 checksum mismatch \(expected 0000000000000000… from the SHA256 image property, got [0-9a-f]{16}…\)/,
    );
    assert.deepEqual(files(cache), []);
    const wrong512: ExpectedDigest = {
      algorithm: 'sha512',
      hex: '0'.repeat(128),
      from: 'SHA512SUMS next to the image',
    };
    await assert.rejects(fetchAll(`${base}/sum.img`, cache, { digest: wrong512 }), /sha512 checksum mismatch/);
    assert.deepEqual(files(cache), []);

    const good512: ExpectedDigest = {
      algorithm: 'sha512',
      hex: createHash('sha512').update(data).digest('hex'),
      from: 'test',
    };
    const first = await fetchAll(`${base}/sum.img`, cache, { digest: good512 });
    assert.equal(first.opened.pendingDigest, undefined, 'verified while downloading');
    assertPublished(cache, '/sum.img', data);

    const good256: ExpectedDigest = { algorithm: 'sha256', hex: sha256(data), from: 'test' };
    assert.equal(
      (await fetchAll(`${base}/sum.img`, cache, { digest: good256 })).opened.pendingDigest,
      undefined,
      'the recorded sha256 matches',
    );
    assert.deepEqual(
      (await fetchAll(`${base}/sum.img`, cache, { digest: good512 })).opened.pendingDigest,
      good512,
      'sha512 is left to the deployment',
    );
    assert.deepEqual(
      (await fetchAll(`${base}/sum.img`, cache, { digest: wrong })).opened.pendingDigest,
      wrong,
      'a mismatch is left to the deployment, which reports it',
    );
  });

  it('eviction removes the least recently used entry to get under the bound', async () => {
    const cache = newCache(2.5 * MiB);
    const e1 = serve('/e1.img', { data: randomBytes(MiB), etag: '"1"' });
    serve('/e2.img', { data: randomBytes(MiB), etag: '"2"' });
    const e3 = serve('/e3.img', { data: randomBytes(MiB), etag: '"3"' });
    await fetchAll(`${base}/e1.img`, cache);
    await fetchAll(`${base}/e2.img`, cache);
    await fetchAll(`${base}/e1.img`, cache); // e1 used again: e2 is now the least recently used
    await fetchAll(`${base}/e3.img`, cache);
    assertPublished(cache, '/e1.img', e1);
    assertPublished(cache, '/e3.img', e3);
    assertNothingFor(cache, '/e2.img');
    assert.ok(logLines.some((l) => /evicted a cached image/.test(l) && l.includes('/e2.img')));
  });

  it('eviction never removes an entry in use', async () => {
    const cache = newCache(1.5 * MiB);
    const u1 = serve('/u1.img', { data: randomBytes(MiB), etag: '"1"' });
    const u2 = serve('/u2.img', { data: randomBytes(MiB), etag: '"2"' });
    await fetchAll(`${base}/u1.img`, cache);
    const inUse = await openCachedHttp(`${base}/u1.img`, settings, cache);
    assert.equal(inUse.via, 'hit');
    await fetchAll(`${base}/u2.img`, cache);
    assertPublished(cache, '/u1.img', u1);
    assertPublished(cache, '/u2.img', u2);
    assert.ok(logLines.some((l) => /stays above IMAGE_CACHE_MAX_SIZE/.test(l)));
    await inUse.close();
    await fetchAll(`${base}/u2.img`, cache); // u1 is free now and the least recently used
    assertNothingFor(cache, '/u1.img');
    assertPublished(cache, '/u2.img', u2);
  });

  it('a corrupted entry (wrong size) is discarded and re-downloaded', async () => {
    const cache = newCache();
    const data = serve('/f.img', { data: randomBytes(2 * MiB), etag: '"f1"' });
    await fetchAll(`${base}/f.img`, cache);
    truncateSync(join(cache.dir, `${keyOf('/f.img')}.${sha256(data)}`), MiB);
    const again = await fetchAll(`${base}/f.img`, cache);
    assert.equal(again.opened.via, 'download');
    assert.ok(again.data.equals(data));
    assert.deepEqual(count('/f.img'), { total: 2, full: 2, notModified: 0, conditional: 0 });
    assertPublished(cache, '/f.img', data);
    assert.ok(
      logLines.some((l) => /discarding the cached image: its file has 1048576 bytes instead of 2097152/.test(l)),
    );
  });

  it('with IMAGE_CACHE_VERIFY a same-size corruption is found by its sha256', async () => {
    const data = serve('/v.img', { data: randomBytes(MiB), etag: '"v1"' });
    const unverified = newCache();
    const verified = { ...unverified, verify: true };
    await fetchAll(`${base}/v.img`, unverified);
    const file = join(unverified.dir, `${keyOf('/v.img')}.${sha256(data)}`);
    const bad = Buffer.from(data);
    bad[1000] = (bad[1000] ?? 0) ^ 0xff;
    writeFileSync(file, bad);
    assert.equal(
      (await fetchAll(`${base}/v.img`, unverified)).opened.via,
      'hit',
      'only the size is checked by default',
    );
    const again = await fetchAll(`${base}/v.img`, verified);
    assert.equal(again.opened.via, 'download');
    assert.ok(again.data.equals(data));
    assertPublished(verified, '/v.img', data);
  });

  it('a virtual-disk image (needFile) is downloaded into the cache and read from there', async () => {
    const cache = newCache();
    const data = serve('/disk.qcow2', { data: randomBytes(2 * MiB), etag: '"q1"' });
    const opened = await openCachedHttp(`${base}/disk.qcow2`, settings, cache, { needFile: true });
    try {
      assert.equal(opened.via, 'hit');
      assert.equal(opened.localPath, join(cache.dir, `${keyOf('/disk.qcow2')}.${sha256(data)}`));
      assert.ok(readFileSync(opened.localPath).equals(data));
    } finally {
      await opened.close();
    }
    assert.equal(count('/disk.qcow2').full, 1);
    const hit = await openCachedHttp(`${base}/disk.qcow2`, settings, cache, { needFile: true });
    await hit.close();
    assert.deepEqual(count('/disk.qcow2'), { total: 2, full: 1, notModified: 1, conditional: 1 });
  });

  it('without Content-Length the image streams through uncached', async () => {
    const cache = newCache();
    const data = serve('/chunked.img', { data: randomBytes(MiB), etag: '"k1"', chunked: true });
    const r = await fetchAll(`${base}/chunked.img`, cache);
    assert.equal(r.opened.via, 'bypass');
    assert.ok(r.data.equals(data));
    assert.deepEqual(files(cache), []);
  });

  it('an image larger than the bound streams through uncached', async () => {
    const cache = newCache(MiB);
    const data = serve('/big.img', { data: randomBytes(2 * MiB), etag: '"g1"' });
    const r = await fetchAll(`${base}/big.img`, cache);
    assert.equal(r.opened.via, 'bypass');
    assert.ok(r.data.equals(data));
    assert.deepEqual(files(cache), []);
  });

  it('HTTP errors are the http source errors and leave nothing behind', async () => {
    const cache = newCache();
    await assert.rejects(
      openCachedHttp(`${base}/missing.img`, settings, cache),
      /^UserError: img_id: http:\/\/127\.0\.0\.1:\d+\/missing\.img answered HTTP 404$/,
    );
    await assert.rejects(
      openCachedHttp('http://127.0.0.1:1/x.img', settings, cache),
      /img_id: cannot fetch http:\/\/127\.0\.0\.1:1\/x\.img/,
    );
    assert.deepEqual(files(cache), []);
  });

  it('a lock left by a dead process is broken', async () => {
    const cache = newCache();
    const data = serve('/stale.img', { data: randomBytes(MiB), etag: '"t1"' });
    const dead = spawnSync('true').pid as number;
    await new ImageCache(cache).prepare();
    writeFileSync(
      join(cache.dir, `${keyOf('/stale.img')}.lock`),
      JSON.stringify({ pid: dead, start: '1', nonce: 'feedfacefeedface' }),
    );
    const r = await fetchAll(`${base}/stale.img`, cache);
    assert.equal(r.opened.via, 'download');
    assert.ok(r.data.equals(data));
    assert.ok(logLines.some((l) => /removed a stale image cache lock/.test(l)));
    assertPublished(cache, '/stale.img', data);
  });

  it('a lock whose live holder makes no progress is bypassed, not waited for forever', async () => {
    const cache = newCache();
    const data = serve('/stall.img', { data: randomBytes(MiB), etag: '"w1"' });
    await new ImageCache(cache).prepare();
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const lock = join(cache.dir, `${keyOf('/stall.img')}.lock`);
    writeFileSync(lock, JSON.stringify({ pid: process.pid, start, nonce: 'cafebabecafebabe' }));
    const hourAgo = new Date(Date.now() - 3600_000);
    utimesSync(lock, hourAgo, hourAgo);
    const r = await fetchAll(`${base}/stall.img`, cache, { stallMs: 200 });
    assert.equal(r.opened.via, 'bypass');
    assert.ok(r.data.equals(data));
    assert.ok(readdirSync(cache.dir).includes(`${keyOf('/stall.img')}.lock`), "a live holder's lock is left alone");
  });
});
