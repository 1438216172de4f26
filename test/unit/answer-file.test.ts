/**
 * os_answer_file fetched on the host: file:// (confined to ANSWER_FILE_DIR, no link leading
 * out of it) and http(s):// bodies, size cap, clear errors.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchAnswerFile } from '../../src/ganeti/answer-file.ts';

const XML = '<unattend xmlns="urn:schemas-microsoft-com:unattend"/>';
const limits = { timeoutSeconds: 5, maxBytes: 1024, dir: '/nonexistent', tls: { caFile: '', verify: true } };
let server: Server;
let base: string;

before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/unattend.xml') res.end(XML);
    else if (req.url === '/big.xml') res.end('x'.repeat(4096));
    else if (req.url === '/moved') {
      res.statusCode = 302;
      res.setHeader('location', '/unattend.xml');
      res.end();
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => server.close());

describe('os_answer_file', () => {
  it('reads file:// and http:// (with redirects) as bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-answer-'));
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(XML, 'utf16le')]);
    writeFileSync(join(dir, 'u.xml'), utf16);
    assert.deepEqual(await fetchAnswerFile(`file://${dir}/u.xml`, { ...limits, dir }), utf16);
    assert.equal((await fetchAnswerFile(`${base}/unattend.xml`, limits)).toString(), XML);
    assert.equal((await fetchAnswerFile(`${base}/moved`, limits)).toString(), XML);
  });

  it('fails with the parameter name and the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-answer-'));
    writeFileSync(join(dir, 'big.xml'), 'x'.repeat(4096));
    writeFileSync(join(dir, 'empty.xml'), '');
    mkdirSync(join(dir, 'sub'));
    const inDir = { ...limits, dir };
    await assert.rejects(
      fetchAnswerFile(`file://${dir}/missing.xml`, inDir),
      /os_answer_file: cannot open .*missing\.xml: ENOENT/,
    );
    await assert.rejects(
      fetchAnswerFile(`file://${dir}/big.xml`, inDir),
      /os_answer_file: .*big\.xml is larger than CONFIG_URL_MAX_SIZE \(1024 bytes\)/,
    );
    await assert.rejects(fetchAnswerFile(`file://${dir}/empty.xml`, inDir), /os_answer_file: .*empty\.xml is empty/);
    await assert.rejects(fetchAnswerFile(`file://${dir}/sub`, inDir), /is not a regular file/);
    await assert.rejects(
      fetchAnswerFile(`${base}/nope`, limits),
      /os_answer_file: http:\/\/127\.0\.0\.1:\d+\/nope answered HTTP 404/,
    );
    await assert.rejects(fetchAnswerFile(`${base}/big.xml`, limits), /larger than CONFIG_URL_MAX_SIZE/);
  });
});

describe('os_answer_file file:// confinement (ANSWER_FILE_DIR)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'snf-answer-dir-'));
  const outside = mkdtempSync(join(tmpdir(), 'snf-answer-out-'));
  writeFileSync(join(outside, 'secret.pem'), 'host private key');
  writeFileSync(join(dir, 'good.xml'), XML);
  mkdirSync(join(dir, 'windows'));
  writeFileSync(join(dir, 'windows', 'xp.inf'), '[Unattended]');
  symlinkSync(join(outside, 'secret.pem'), join(dir, 'link-out.xml'));
  symlinkSync(outside, join(dir, 'dir-out'));
  symlinkSync('good.xml', join(dir, 'link-in.xml'));
  const inDir = { ...limits, dir };
  const oneLine = (pattern: RegExp) => (e: Error) =>
    pattern.test(e.message) && !e.message.includes('\n') && !e.message.includes('host private key');

  it('refuses file:///etc/shadow: outside ANSWER_FILE_DIR', async () => {
    await assert.rejects(
      fetchAnswerFile('file:///etc/shadow', inDir),
      oneLine(new RegExp(`^os_answer_file: file:///etc/shadow is outside ANSWER_FILE_DIR \\(${dir}\\)`)),
    );
    await assert.rejects(
      fetchAnswerFile(`file://${dir}/../${outside.split('/').pop()}/secret.pem`, inDir),
      oneLine(/is outside ANSWER_FILE_DIR/),
    );
  });

  it('refuses a link inside the directory that leads out of it (the file or a directory on the path)', async () => {
    await assert.rejects(
      fetchAnswerFile(`file://${dir}/link-out.xml`, inDir),
      oneLine(/^os_answer_file: .*link-out\.xml resolves outside ANSWER_FILE_DIR .* through a symbolic link/),
    );
    await assert.rejects(
      fetchAnswerFile(`file://${dir}/dir-out/secret.pem`, inDir),
      oneLine(/^os_answer_file: .*dir-out\/secret\.pem resolves outside ANSWER_FILE_DIR/),
    );
  });

  it('accepts a file inside the directory (also in a subdirectory, or through a link that stays inside)', async () => {
    assert.equal((await fetchAnswerFile(`file://${dir}/good.xml`, inDir)).toString(), XML);
    assert.equal((await fetchAnswerFile(`file://${dir}/windows/xp.inf`, inDir)).toString(), '[Unattended]');
    assert.equal((await fetchAnswerFile(`file://${dir}/link-in.xml`, inDir)).toString(), XML);
  });
});
