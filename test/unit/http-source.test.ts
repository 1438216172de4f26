import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { httpSource } from '../../src/image/sources/http.ts';

const data = randomBytes(3 * 1024 * 1024 + 123);
let server: Server;
let base: string;
let dropped = 0;
const rangeRequests: string[] = [];

before(async () => {
  server = createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/image' || url === '/flaky' || url === '/flaky-norange') {
      const range = req.headers.range;
      if (range) rangeRequests.push(range);
      const start = range ? Number(/bytes=(\d+)-/.exec(range)?.[1] ?? 0) : 0;
      res.statusCode = range && url !== '/flaky-norange' ? 206 : 200;
      if (url !== '/flaky-norange') res.setHeader('accept-ranges', 'bytes');
      res.setHeader('etag', '"v1"');
      res.setHeader('content-length', String(data.length - start));
      const body = data.subarray(start);
      if ((url === '/flaky' || url === '/flaky-norange') && start === 0) {
        // Send a third of the body, then drop the connection.
        res.write(body.subarray(0, 1024 * 1024), () => {
          dropped += 1;
          req.socket.destroy();
        });
        return;
      }
      res.end(body);
      return;
    }
    res.statusCode = url === '/error' ? 500 : 404;
    res.end('nope');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
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

async function fetchAll(path: string): Promise<Buffer> {
  const opened = await httpSource.open(`${base}${path}`, settings);
  const chunks: Uint8Array[] = [];
  try {
    for await (const chunk of opened.stream()) chunks.push(chunk);
  } finally {
    await opened.close();
  }
  return Buffer.concat(chunks);
}

describe('http image source', () => {
  it('streams the image with its Content-Length as size', async () => {
    const opened = await httpSource.open(`${base}/image`, settings);
    assert.equal(opened.size, data.length);
    await opened.close();
    assert.ok((await fetchAll('/image')).equals(data));
  });

  it('treats non-2xx answers as errors', async () => {
    await assert.rejects(
      httpSource.open(`${base}/missing`, settings),
      /img_id: http:\/\/127\.0\.0\.1:\d+\/missing answered HTTP 404/,
    );
    await assert.rejects(httpSource.open(`${base}/error`, settings), /answered HTTP 500/);
    await assert.rejects(
      httpSource.open('http://127.0.0.1:1/x', settings),
      /img_id: cannot fetch http:\/\/127\.0\.0\.1:1\/x/,
    );
  });

  it('resumes a dropped download with a Range request and gets identical bytes', async () => {
    const got = await fetchAll('/flaky');
    assert.ok(dropped >= 1);
    assert.ok(rangeRequests.some((r) => /^bytes=\d+-$/.test(r) && r !== 'bytes=0-'));
    assert.ok(got.equals(data));
  });

  it('fails cleanly when the server cannot resume', async () => {
    await assert.rejects(
      fetchAll('/flaky-norange'),
      /img_id: download of .* failed after \d+ bytes .*does not allow resuming/,
    );
  });
});
