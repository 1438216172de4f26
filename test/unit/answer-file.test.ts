/** os_answer_file fetched on the host: file:// and http(s):// bodies, size cap, clear errors. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchAnswerFile } from '../../src/ganeti/answer-file.ts';

const XML = '<unattend xmlns="urn:schemas-microsoft-com:unattend"/>';
const limits = { timeoutSeconds: 5, maxBytes: 1024 };
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
    assert.deepEqual(await fetchAnswerFile(`file://${dir}/u.xml`, limits), utf16);
    assert.equal((await fetchAnswerFile(`${base}/unattend.xml`, limits)).toString(), XML);
    assert.equal((await fetchAnswerFile(`${base}/moved`, limits)).toString(), XML);
  });

  it('fails with the parameter name and the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-answer-'));
    writeFileSync(join(dir, 'big.xml'), 'x'.repeat(4096));
    writeFileSync(join(dir, 'empty.xml'), '');
    await assert.rejects(fetchAnswerFile(`file://${dir}/missing.xml`, limits), /os_answer_file: cannot open .*missing\.xml: ENOENT/);
    await assert.rejects(fetchAnswerFile(`file://${dir}/big.xml`, limits), /os_answer_file: .*big\.xml is larger than CONFIG_URL_MAX_SIZE \(1024 bytes\)/);
    await assert.rejects(fetchAnswerFile(`file://${dir}/empty.xml`, limits), /os_answer_file: .*empty\.xml is empty/);
    await assert.rejects(fetchAnswerFile(`file://${dir}`, limits), /is not a regular file/);
    await assert.rejects(fetchAnswerFile(`${base}/nope`, limits), /os_answer_file: http:\/\/127\.0\.0\.1:\d+\/nope answered HTTP 404/);
    await assert.rejects(fetchAnswerFile(`${base}/big.xml`, limits), /larger than CONFIG_URL_MAX_SIZE/);
  });
});
