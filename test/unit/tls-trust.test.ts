/**
 * The certificate trust of every https fetch (util/tls-trust.ts): HTTPS_CA_FILE parsing,
 * the one-line reasons, and config_url, os_answer_file and SHA256SUMS fetched from a local
 * https server whose CA (made by openssl here) is trusted only through HTTPS_CA_FILE.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fetchAnswerFile } from '../../src/ganeti/answer-file.ts';
import { fetchConfigDocument } from '../../src/ganeti/config-url.ts';
import { digestFromSidecar } from '../../src/image/checksum.ts';
import { fetchFailure, parseCaBundle, trustedCertificates } from '../../src/util/tls-trust.ts';
import { TestCa } from '../support/test-ca.ts';

const dir = mkdtempSync(join(tmpdir(), 'snf-tls-trust-'));
const XML = '<unattend xmlns="urn:schemas-microsoft-com:unattend"/>';
const noOpenssl = !existsSync('/usr/bin/openssl') && 'needs openssl';
let server: Server;
let base = '';

before(async () => {
  if (noOpenssl) return;
  const ca = new TestCa(dir);
  ca.makeCa('ca', '/CN=unit CA');
  ca.makeServerCert('s', 'ca', 'IP:127.0.0.1', 2, '/CN=127.0.0.1');
  server = createServer(
    { key: readFileSync(join(dir, 's.key')), cert: readFileSync(join(dir, 's.pem')) },
    (req, res) => {
      if (req.url === '/doc.json') res.end('{"img_format": "diskdump"}');
      else if (req.url === '/unattend.xml') res.end(XML);
      else if (req.url === '/images/SHA256SUMS')
        res.end(`${createHash('sha256').update('x').digest('hex')}  disk.img\n`);
      else {
        res.statusCode = 404;
        res.end();
      }
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server?.closeAllConnections();
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('HTTPS_CA_FILE contents', () => {
  it('takes every PEM certificate of a bundle, text around them ignored', () => {
    const bundle = `# two roots\n${rootCertificates[0]}\nsome text\n${rootCertificates[1]}\n`;
    assert.equal(parseCaBundle(bundle, '/etc/ca.pem').length, 2);
  });

  it('refuses a file without a certificate, or with a broken one, naming the setting', () => {
    assert.throws(
      () => parseCaBundle('nothing', '/etc/ca.pem'),
      /^UserError: HTTPS_CA_FILE: \/etc\/ca\.pem holds no PEM certificate$/,
    );
    const broken = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    assert.throws(
      () => parseCaBundle(`${rootCertificates[0]}\n${broken}`, '/etc/ca.pem'),
      /^UserError: HTTPS_CA_FILE: certificate 2 in \/etc\/ca\.pem cannot be parsed$/,
    );
  });

  it("trusts Node's roots besides the file", { skip: noOpenssl }, () => {
    const all = trustedCertificates({ caFile: join(dir, 'ca.pem'), verify: true });
    assert.ok(all.includes(rootCertificates[0] as string));
    assert.ok(all.some((pem) => readFileSync(join(dir, 'ca.pem'), 'utf8').includes(pem.trim())));
  });
});

describe('TLS failure reasons', () => {
  const failure = (code: string, message: string) => fetchFailure(Object.assign(new Error(message), { code }));
  it('names what to do about an untrusted CA, without Node hint about --use-system-ca', () => {
    assert.equal(
      failure(
        'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
        'unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca',
      ),
      "unable to verify the first certificate (the server's certificate is not signed by a trusted CA: add the CA to the system store or HTTPS_CA_FILE)",
    );
  });
  it('expired, another name, anything else as it is', () => {
    assert.match(failure('CERT_HAS_EXPIRED', 'certificate has expired'), /not valid now/);
    assert.match(failure('ERR_TLS_CERT_ALTNAME_INVALID', 'Hostname/IP does not match'), /for another name/);
    assert.equal(failure('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'), 'connect ECONNREFUSED 127.0.0.1:1');
  });
});

describe('config_url, os_answer_file and SHA256SUMS over https with a private CA', { skip: noOpenssl }, () => {
  const trusted = () => ({ caFile: join(dir, 'ca.pem'), verify: true });
  const untrusted = { caFile: '', verify: true };
  const common = { timeoutSeconds: 5, maxBytes: 4096, dir: '/nonexistent' };

  it('trusted through HTTPS_CA_FILE: fetched', async () => {
    const doc = await fetchConfigDocument(`${base}/doc.json`, { ...common, tls: trusted() });
    assert.equal(doc.get('img_format'), 'diskdump');
    assert.equal((await fetchAnswerFile(`${base}/unattend.xml`, { ...common, tls: trusted() })).toString(), XML);
    const digest = await digestFromSidecar(new URL(`${base}/images/disk.img`), 5000, trusted());
    assert.equal(digest?.algorithm, 'sha256');
  });

  it('not trusted: one line naming the parameter and the reason; no sidecar checksum', async () => {
    await assert.rejects(
      fetchConfigDocument(`${base}/doc.json`, { ...common, tls: untrusted }),
      /^UserError: config_url: cannot fetch https:\/\/127\.0\.0\.1:\d+\/doc\.json: unable to verify the first certificate \(the server's certificate is not signed by a trusted CA/,
    );
    await assert.rejects(
      fetchAnswerFile(`${base}/unattend.xml`, { ...common, tls: untrusted }),
      /^UserError: os_answer_file: cannot fetch .*unable to verify the first certificate/,
    );
    assert.equal(await digestFromSidecar(new URL(`${base}/images/disk.img`), 5000, untrusted), undefined);
  });

  it('HTTPS_VERIFY=no: fetched', async () => {
    const doc = await fetchConfigDocument(`${base}/doc.json`, { ...common, tls: { caFile: '', verify: false } });
    assert.equal(doc.get('img_format'), 'diskdump');
  });
});
