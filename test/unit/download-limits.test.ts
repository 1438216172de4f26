/**
 * Remote downloads are bounded: bytes (the disk size plus container overhead), total time
 * (DOWNLOAD_TIMEOUT), slowest average speed (DOWNLOAD_MIN_SPEED over HTTP_TIMEOUT), and
 * SHA256SUMS size; against servers on 127.0.0.1 that never stop, trickle, or send a huge
 * SHA256SUMS. FTP goes through curl: a stand-in curl on PATH shows what it is asked.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { digestFromSidecar } from '../../src/image/checksum.ts';
import { openCachedHttp } from '../../src/image/sources/cached-http.ts';
import { ftpSource } from '../../src/image/sources/ftp.ts';
import { httpSource } from '../../src/image/sources/http.ts';
import type { OpenedImage, SourceSettings } from '../../src/image/sources/source.ts';

const MiB = 1024 * 1024;
let server: Server;
let base = '';
const timers = new Set<NodeJS.Timeout>();

/** Writes `chunk` every `everyMs` until the client goes away. */
function drip(res: ServerResponse, chunk: Buffer, everyMs: number): void {
  const timer = setInterval(() => {
    if (res.destroyed) {
      clearInterval(timer);
      timers.delete(timer);
      return;
    }
    res.write(chunk);
  }, everyMs);
  timers.add(timer);
  res.on('close', () => {
    clearInterval(timer);
    timers.delete(timer);
  });
}

/** Writes as fast as the client reads, forever. */
function endless(res: ServerResponse): void {
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const more = (): void => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', more);
  };
  more();
}

before(async () => {
  server = createServer((req, res) => {
    switch (req.url) {
      case '/endless.img':
        endless(res);
        return;
      case '/declared-huge.img':
        res.setHeader('content-length', String(100 * MiB));
        endless(res);
        return;
      case '/trickle.img':
        // 20 bytes/s: under any sane minimum speed, but never idle long enough for HTTP_TIMEOUT.
        res.setHeader('content-length', String(MiB));
        drip(res, Buffer.alloc(1), 50);
        return;
      case '/steady.img':
        // 160 KiB/s: fast enough, but longer than DOWNLOAD_TIMEOUT in all.
        res.setHeader('content-length', String(64 * MiB));
        drip(res, Buffer.alloc(16 * 1024), 100);
        return;
      case '/sums/SHA256SUMS':
        res.setHeader('content-length', String(64 * MiB));
        res.end(Buffer.alloc(64 * MiB, 0x30));
        return;
      case '/sums-chunked/SHA256SUMS':
        endless(res);
        return;
      default:
        res.statusCode = 404;
        res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  for (const timer of timers) clearInterval(timer);
  server.closeAllConnections();
  server.close();
});

const limits: SourceSettings = {
  imageDir: '/nonexistent',
  httpTimeoutSeconds: 1,
  httpRetries: 1,
  downloadTimeoutSeconds: 3,
  downloadMinSpeed: 4096,
  downloadMaxBytes: 4 * MiB,
  tls: { caFile: '', verify: true },
};

/**
 * Reads the stream; resolves to the error that stopped it, or fails the test when it ran
 * past `giveUpBytes` or `giveUpMs` without being stopped (the unbounded behaviour).
 */
async function stoppedBy(
  open: () => Promise<OpenedImage>,
  giveUpBytes = 32 * MiB,
  giveUpMs = 10_000,
): Promise<{ error: Error; bytes: number; ms: number }> {
  const started = Date.now();
  let bytes = 0;
  let opened: OpenedImage | undefined;
  try {
    opened = await open();
    for await (const chunk of opened.stream()) {
      bytes += chunk.byteLength;
      if (bytes > giveUpBytes) assert.fail(`read ${bytes} bytes without being stopped`);
      if (Date.now() - started > giveUpMs) assert.fail(`still downloading after ${giveUpMs} ms (${bytes} bytes)`);
    }
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_ASSERTION') throw error;
    return { error: error as Error, bytes, ms: Date.now() - started };
  } finally {
    await opened?.close();
  }
  return assert.fail(`the download ended without an error after ${bytes} bytes`);
}

describe('download limits (http)', () => {
  it('an endless body stops at the byte limit', async () => {
    const { error, bytes } = await stoppedBy(() => httpSource.open(`${base}/endless.img`, limits));
    assert.match(
      error.message,
      /^img_id: download of http:\/\/127\.0\.0\.1:\d+\/endless\.img stopped: more than 4194304 bytes, the most this disk can take$/,
    );
    assert.ok(bytes <= 4 * MiB, `${bytes} bytes passed on`);
  });

  it('a Content-Length beyond the byte limit is refused before the body is read', async () => {
    await assert.rejects(
      httpSource.open(`${base}/declared-huge.img`, limits),
      /^UserError: img_id: http:\/\/127\.0\.0\.1:\d+\/declared-huge\.img is 104857600 bytes, more than the 4194304 bytes this disk can take$/,
    );
  });

  it('a trickling server is dropped for being slower than DOWNLOAD_MIN_SPEED', async () => {
    const { error, ms } = await stoppedBy(() => httpSource.open(`${base}/trickle.img`, limits));
    assert.match(
      error.message,
      /^img_id: download of .*\/trickle\.img stopped: slower than DOWNLOAD_MIN_SPEED \(4096 bytes\/s over 1 s\)$/,
    );
    assert.ok(ms < 3000, `${ms} ms`);
  });

  it('a download that is fast enough but longer than DOWNLOAD_TIMEOUT stops', async () => {
    const { error, ms } = await stoppedBy(() =>
      httpSource.open(`${base}/steady.img`, { ...limits, downloadMaxBytes: 128 * MiB }),
    );
    assert.match(
      error.message,
      /^img_id: download of .*\/steady\.img stopped: it took longer than DOWNLOAD_TIMEOUT \(3 s\)$/,
    );
    assert.ok(ms >= 2500 && ms < 5000, `${ms} ms`);
  });

  it('downloads through the image cache without Content-Length (not cached) are bounded too', async () => {
    const cache = {
      dir: join(mkdtempSync(join(tmpdir(), 'snf-limits-cache-')), 'images'),
      maxBytes: 1024 * MiB,
      verify: false,
    };
    const { error } = await stoppedBy(() => openCachedHttp(`${base}/endless.img`, limits, cache));
    assert.match(error.message, /stopped: more than 4194304 bytes, the most this disk can take$/);
    const slow = await stoppedBy(() => openCachedHttp(`${base}/trickle.img`, limits, cache, { needFile: true }));
    assert.match(slow.error.message, /stopped: slower than DOWNLOAD_MIN_SPEED/);
  });
});

describe('SHA256SUMS next to an http image', () => {
  it('a huge SHA256SUMS is refused, not read whole', async () => {
    for (const dir of ['sums', 'sums-chunked']) {
      const started = Date.now();
      await assert.rejects(
        digestFromSidecar(new URL(`${base}/${dir}/disk.img`), 5000, { caFile: '', verify: true }),
        /^UserError: img_id: SHA256SUMS next to the image is larger than 1048576 bytes$/,
        dir,
      );
      assert.ok(Date.now() - started < 5000, dir);
    }
  });
});

describe('download limits (ftp, through curl)', () => {
  it('curl gets the total time and minimum speed, and an endless transfer stops at the byte limit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-fake-curl-'));
    const argvFile = join(dir, 'argv');
    // A stand-in curl: records its arguments, answers --head with a small header, else never stops.
    writeFileSync(
      join(dir, 'curl'),
      `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done >> ${argvFile}\necho --- >> ${argvFile}\ncat > /dev/null\ncase " $* " in *" --head "*) echo 'Content-Length: 100'; exit 0;; esac\nexec cat /dev/zero\n`,
    );
    chmodSync(join(dir, 'curl'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${dir}:${path ?? ''}`;
    try {
      const { error } = await stoppedBy(() => ftpSource.open('ftp://127.0.0.1/image.img', limits));
      assert.match(
        error.message,
        /^img_id: download of ftp:\/\/127\.0\.0\.1\/image\.img stopped: more than 4194304 bytes, the most this disk can take$/,
      );
    } finally {
      process.env.PATH = path;
    }
    const calls = readFileSync(argvFile, 'utf8')
      .split('---\n')
      .filter(Boolean)
      .map((c) => c.trim().split('\n'));
    assert.equal(calls.length, 2, 'a --head request, then the transfer');
    for (const [i, argv] of calls.entries()) {
      const value = (flag: string) => argv[argv.indexOf(flag) + 1];
      // The --head request gets DOWNLOAD_TIMEOUT (3 s); the transfer what is left of it.
      if (i === 0) assert.equal(value('--max-time'), '3', argv.join(' '));
      else assert.ok(['1', '2', '3'].includes(value('--max-time') ?? ''), argv.join(' '));
      assert.equal(value('--speed-limit'), '4096', argv.join(' '));
      assert.equal(value('--speed-time'), '1', argv.join(' '));
    }
  });
});
