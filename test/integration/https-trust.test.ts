/**
 * https image servers as operators run them, with a private CA made here by openssl: the
 * built binary's `create`, run with Ganeti's clean environment (env -i: no
 * NODE_EXTRA_CA_CERTS, which this machine sets and which hides a missing system store),
 * trusts the node's system CA store (pointed at a temporary CA with SSL_CERT_FILE and
 * SSL_CERT_DIR, the variables OpenSSL and Node read for it) and HTTPS_CA_FILE; it refuses an
 * untrusted, an expired and a wrongly named certificate with one line naming img_id and the
 * reason; HTTPS_VERIFY=no accepts any certificate with a warning.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { binaryMissingReason, runScript } from '../support/binary.ts';
import { makeNode } from '../support/node-fixture.ts';
import { TestCa } from '../support/test-ca.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const MiB = 1024 * 1024;
const skip = binaryMissingReason() || (process.platform !== 'linux' && 'needs Linux');
const dir = mkdtempSync(join(tmpdir(), 'snf-https-trust-'));
const emptyDir = join(dir, 'empty-store');
const image = randomBytes(3 * MiB);
image[510] = 0x55;
image[511] = 0xaa;
const imageSha = createHash('sha256').update(image).digest('hex');
const servers = new Map<string, Server>();
const ports = new Map<string, number>();

const ca = new TestCa(dir);
const makeCa = (name: string) => ca.makeCa(name);
const makeServerCert = (name: string, issuer: string, san: string, days: number) =>
  ca.makeServerCert(name, issuer, san, days);

async function serve(name: string): Promise<void> {
  const server = createServer(
    { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)) },
    (req, res) => {
      if (req.url !== '/disk.img') {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader('content-length', String(image.length));
      res.end(image);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.set(name, server);
  ports.set(name, (server.address() as AddressInfo).port);
}

const url = (name: string) => `https://127.0.0.1:${ports.get(name)}/disk.img`;

/** `create` with Ganeti's environment (nothing else but what `env` adds) and a node configured with `conf`. */
async function create(imgId: string, conf: string, env: Record<string, string> = {}) {
  // IMAGE_CACHE at its default (yes), as operators run it: the download goes through the cache.
  const node = makeNode(`HTTP_RETRIES=0\nHTTP_TIMEOUT=5\n${conf}`);
  appendFileSync(node.configFile, `IMAGE_CACHE_DIR=${join(node.root, 'cache')}\n`);
  const disk = join(node.root, 'disk0');
  writeFileSync(disk, Buffer.alloc(4 * MiB, 0xff));
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: imgId,
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PROPERTIES: JSON.stringify({ EXCLUDE_ALL_TASKS: 'yes' }),
      DISK_0_PATH: disk,
      SNF_IMAGE_CONFIG: node.configFile,
      ...env,
    },
  });
  const written = createHash('sha256').update(readFileSync(disk).subarray(0, image.length)).digest('hex');
  rmSync(node.root, { recursive: true, force: true });
  return { ...r, deployed: written === imageSha };
}

/** The system store holds only the test CA: OpenSSL's (and Node's) variables for it, nothing else set. */
const systemStore = (ca: string) => ({ SSL_CERT_FILE: join(dir, `${ca}.pem`), SSL_CERT_DIR: emptyDir });

function oneErrorLine(stderr: string): string {
  const errors = stderr.split('\n').filter((l) => /\bERROR\b/.test(l));
  assert.equal(errors.length, 1, stderr);
  return errors[0] as string;
}

before(async () => {
  if (skip) return;
  mkdirSync(emptyDir);
  for (const ca of ['ca', 'other-ca']) makeCa(ca);
  makeServerCert('good', 'ca', 'IP:127.0.0.1', 2);
  makeServerCert('expired', 'ca', 'IP:127.0.0.1', -1);
  makeServerCert('wrong-name', 'ca', 'DNS:images.example.org', 2);
  makeServerCert('untrusted', 'other-ca', 'IP:127.0.0.1', 2);
  writeFileSync(join(dir, 'not-pem.txt'), 'no certificate here\n');
  for (const name of ['good', 'expired', 'wrong-name', 'untrusted']) await serve(name);
});

after(() => {
  for (const server of servers.values()) {
    server.closeAllConnections();
    server.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('https image servers with a private CA (built binary, create under env -i)', { skip }, () => {
  it('the CA in the system store: deployed', async () => {
    const r = await create(url('good'), '', systemStore('ca'));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.deployed, 'the disk holds the image');
  });

  it('the CA nowhere: refused with one line naming img_id and the reason', async () => {
    const r = await create(url('good'), '', systemStore('other-ca'));
    assert.notEqual(r.code, 0);
    assert.match(
      oneErrorLine(r.stderr),
      /ERROR img_id: cannot fetch https:\/\/127\.0\.0\.1:\d+\/disk\.img: unable to verify the first certificate \(the server's certificate is not signed by a trusted CA: add the CA to the system store or HTTPS_CA_FILE\)/,
    );
    assert.ok(!r.deployed);
  });

  it('the CA in HTTPS_CA_FILE: deployed', async () => {
    const r = await create(url('good'), `HTTPS_CA_FILE=${join(dir, 'ca.pem')}\n`, systemStore('other-ca'));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.deployed);
  });

  it('the default system store (no SSL_CERT_* at all) does not hold the test CA: refused', async () => {
    const r = await create(url('good'), '');
    assert.notEqual(r.code, 0);
    assert.match(oneErrorLine(r.stderr), /ERROR img_id: cannot fetch .*unable to verify the first certificate/);
  });

  it('a certificate from another CA: refused', async () => {
    const r = await create(url('untrusted'), `HTTPS_CA_FILE=${join(dir, 'ca.pem')}\n`, systemStore('ca'));
    assert.notEqual(r.code, 0);
    assert.match(
      oneErrorLine(r.stderr),
      /ERROR img_id: cannot fetch https:\/\/127\.0\.0\.1:\d+\/disk\.img: unable to verify the first certificate \(the server's certificate is not signed by a trusted CA/,
    );
  });

  it('an expired certificate: refused', async () => {
    const r = await create(url('expired'), '', systemStore('ca'));
    assert.notEqual(r.code, 0);
    assert.match(
      oneErrorLine(r.stderr),
      /ERROR img_id: cannot fetch https:\/\/127\.0\.0\.1:\d+\/disk\.img: certificate has expired \(the server's certificate is not valid now\)/,
    );
  });

  it('a certificate for another name: refused', async () => {
    const r = await create(url('wrong-name'), '', systemStore('ca'));
    assert.notEqual(r.code, 0);
    assert.match(
      oneErrorLine(r.stderr),
      /ERROR img_id: cannot fetch https:\/\/127\.0\.0\.1:\d+\/disk\.img: Hostname\/IP does not match certificate's altnames: .* \(the certificate is for another name\)/,
    );
  });

  it('HTTPS_VERIFY=no: any certificate, with a warning', async () => {
    const r = await create(url('untrusted'), 'HTTPS_VERIFY=no\n', systemStore('ca'));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.deployed);
    assert.match(r.stderr, /WARN.*HTTPS_VERIFY=no: the certificates of https and ftps servers are not verified/);
  });

  it('HTTPS_CA_FILE without a certificate: one line naming the setting', async () => {
    const r = await create(url('good'), `HTTPS_CA_FILE=${join(dir, 'not-pem.txt')}\n`, systemStore('ca'));
    assert.notEqual(r.code, 0);
    assert.match(oneErrorLine(r.stderr), /ERROR HTTPS_CA_FILE: .*not-pem\.txt holds no PEM certificate/);
    const missing = await create(url('good'), `HTTPS_CA_FILE=${join(dir, 'missing.pem')}\n`);
    assert.match(oneErrorLine(missing.stderr), /ERROR HTTPS_CA_FILE: cannot read .*missing\.pem: ENOENT/);
  });
});
