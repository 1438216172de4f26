import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { applyConfigDocument, fetchConfigDocument, parseConfigDocument } from '../../src/ganeti/config-url.ts';
import { wrapSecrets } from '../../src/ganeti/params.ts';
import { Secret } from '../../src/util/secret.ts';

let server: Server;
let base: string;

before(async () => {
  server = createServer((req, res) => {
    switch (req.url) {
      case '/ok.json':
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            IMG_ID: 'http://127.0.0.1/img',
            img_format: 'diskdump',
            img_passwd: 'doc-secret-pw',
            img_properties: { OSFAMILY: 'linux' },
          }),
        );
        break;
      case '/redirect':
        res.statusCode = 302;
        res.setHeader('location', '/ok.json');
        res.end();
        break;
      case '/big':
        res.end(`{"img_id": "${'x'.repeat(4096)}"}`);
        break;
      case '/slow':
        setTimeout(() => res.end('{}'), 3000);
        break;
      case '/notjson':
        res.end('<html>');
        break;
      case '/unknown':
        res.end('{"img_idd": "x"}');
        break;
      default:
        res.statusCode = 404;
        res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

const opts = { timeoutSeconds: 5, maxBytes: 1024, tls: { caFile: '', verify: true } };

describe('config_url', () => {
  it('fetches, lower-cases keys and serializes JSON values', async () => {
    const doc = await fetchConfigDocument(`${base}/ok.json`, opts);
    assert.equal(doc.get('img_id'), 'http://127.0.0.1/img');
    assert.equal(doc.get('img_properties'), '{"OSFAMILY":"linux"}');
  });

  it('follows redirects', async () => {
    assert.equal((await fetchConfigDocument(`${base}/redirect`, opts)).get('img_format'), 'diskdump');
  });

  it('fails clearly on HTTP errors, size, timeouts, bad JSON and unknown keys', async () => {
    await assert.rejects(
      fetchConfigDocument(`${base}/missing`, opts),
      /^UserError: config_url: http:\/\/127\.0\.0\.1:\d+\/missing answered HTTP 404$/,
    );
    await assert.rejects(fetchConfigDocument(`${base}/big`, opts), /larger than CONFIG_URL_MAX_SIZE \(1024 bytes\)/);
    await assert.rejects(
      fetchConfigDocument(`${base}/slow`, { timeoutSeconds: 0.5, maxBytes: 1024, tls: { caFile: '', verify: true } }),
      /config_url: cannot fetch .*\/slow: no answer within 0\.5 s/,
    );
    await assert.rejects(fetchConfigDocument(`${base}/notjson`, opts), /is not valid JSON/);
    await assert.rejects(fetchConfigDocument(`${base}/unknown`, opts), /config_url document: unknown key 'img_idd'/);
    await assert.rejects(
      fetchConfigDocument('http://127.0.0.1:1/x', opts),
      /config_url: cannot fetch http:\/\/127\.0\.0\.1:1\/x/,
    );
  });

  it('hides credentials of the URL in errors', async () => {
    const port = new URL(base).port;
    await assert.rejects(
      fetchConfigDocument(`http://user:pw-in-url@127.0.0.1:${port}/missing`, opts),
      (e: Error) => !e.message.includes('pw-in-url'),
    );
  });

  it('document values override the parameters, secrets wrapped', () => {
    const params = wrapSecrets(
      new Map([
        ['img_id', 'old'],
        ['img_format', 'diskdump'],
        ['config_url', 'http://x'],
      ]),
    );
    const merged = applyConfigDocument(
      params,
      parseConfigDocument('{"img_id": "new", "img_passwd": "pw-from-doc"}', 'test'),
    );
    assert.equal(merged.get('img_id'), 'new');
    assert.equal(merged.get('config_url'), 'http://x');
    assert.ok(merged.get('img_passwd') instanceof Secret);
  });

  it('never shows a secret from the document in a validation error', () => {
    assert.throws(
      () => parseConfigDocument('{"img_passwd": "doc-secret-value", "bogus": 1}', 'test'),
      (e: Error) => !e.message.includes('doc-secret-value') && /unknown key 'bogus'/.test(e.message),
    );
  });
});

describe('config_url document and os_answer_file', () => {
  it('refuses a file:// answer file named by a config_url document (a host file would reach the guest)', () => {
    for (const url of [
      'file:///etc/snf-image/answer-files/u.xml',
      'FILE:///etc/shadow',
      ' file:///var/lib/ganeti/server.pem',
    ]) {
      assert.throws(
        () => parseConfigDocument(JSON.stringify({ os_answer_file: url }), 'http://192.0.2.1/doc.json'),
        (e: Error) =>
          /^os_answer_file: a config_url document may not name a file:\/\/ answer file \(use http\(s\):\/\/ or ftp\(s\):\/\/\)$/.test(
            e.message,
          ),
        url,
      );
    }
    assert.equal(
      parseConfigDocument('{"os_answer_file": "https://192.0.2.1/unattend.xml"}', 'test').get('os_answer_file'),
      'https://192.0.2.1/unattend.xml',
    );
  });
});
