/**
 * curl (ftp(s) images and answer files) is started with -q first, so no ~/.curlrc is read,
 * and gets the URL, credentials included, on its stdin as a config line, never in argv
 * (visible to every user in ps). A stand-in curl on PATH records what it was given.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchAnswerFile } from '../../src/ganeti/answer-file.ts';
import { ftpSource } from '../../src/image/sources/ftp.ts';

const XML = '<unattend xmlns="urn:schemas-microsoft-com:unattend"/>';
const dir = mkdtempSync(join(tmpdir(), 'snf-curl-args-'));
const log = join(dir, 'calls');
const savedPath = process.env.PATH;

interface Call {
  argv: string[];
  stdin: string;
}

function calls(): Call[] {
  return readFileSync(log, 'utf8')
    .split('=== call\n')
    .filter(Boolean)
    .map((text) => {
      const [argv = '', stdin = ''] = text.split('--- stdin\n');
      return { argv: argv.split('\n').filter(Boolean), stdin };
    });
}

before(() => {
  // Records argv (one per line) and stdin when told to read a config from it (-K - / --config -);
  // --head gets a size, a transfer gets the answer file.
  writeFileSync(
    join(dir, 'curl'),
    `#!/bin/sh\n{ echo '=== call'; for a in "$@"; do printf '%s\\n' "$a"; done; echo '--- stdin'; case " $* " in *" -K - "*|*" --config - "*) cat;; esac; } >> ${log}\ncase " $* " in *" --head "*) echo 'Content-Length: ${XML.length}'; exit 0;; esac\nprintf '%s' '${XML}'\n`,
  );
  chmodSync(join(dir, 'curl'), 0o755);
  process.env.PATH = `${dir}:${savedPath ?? ''}`;
});

after(() => {
  process.env.PATH = savedPath;
});

describe('curl command lines', () => {
  it('os_answer_file ftp://user:password@...: -q first, the URL and password only on stdin', async () => {
    writeFileSync(log, '');
    const body = await fetchAnswerFile('ftp://admin:s3cret-pw@127.0.0.1/unattend.xml', {
      timeoutSeconds: 5,
      maxBytes: 1024,
      dir: '/nonexistent',
      tls: { caFile: '', verify: true },
    });
    assert.equal(body.toString(), XML);
    const [call, ...more] = calls();
    assert.equal(more.length, 0);
    assert.ok(call);
    assert.equal(call.argv[0], '-q', call.argv.join(' '));
    assert.ok(!call.argv.some((a) => a.includes('s3cret-pw') || a.includes('127.0.0.1')), call.argv.join(' '));
    assert.match(call.stdin, /^url = "ftp:\/\/admin:s3cret-pw@127\.0\.0\.1\/unattend\.xml"$/m);
  });

  it('ftp(s) images: -q first, the password only on stdin', async () => {
    writeFileSync(log, '');
    const opened = await ftpSource.open('ftp://admin:s3cret-pw@127.0.0.1/disk.img', {
      imageDir: '/nonexistent',
      httpTimeoutSeconds: 5,
      httpRetries: 0,
      downloadTimeoutSeconds: 60,
      downloadMinSpeed: 0,
      downloadMaxBytes: 1024 * 1024,
      tls: { caFile: '', verify: true },
    });
    for await (const _chunk of opened.stream()) {
      // the stand-in's output
    }
    await opened.close();
    const all = calls();
    assert.equal(all.length, 2, 'a --head request, then the transfer');
    for (const call of all) {
      assert.equal(call.argv[0], '-q', call.argv.join(' '));
      assert.ok(!call.argv.some((a) => a.includes('s3cret-pw')), call.argv.join(' '));
      assert.match(call.stdin, /s3cret-pw@127\.0\.0\.1/);
    }
  });
});
