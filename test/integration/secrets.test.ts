/**
 * Secret OS parameters never appear in logs, monitor messages, error text, process
 * arguments or the environment of processes snf-image starts (built binary, Ganeti env).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { binaryMissingReason, runScript } from '../support/binary.ts';
import { makeNode } from '../support/node-fixture.ts';
import { CREATE_ENV, VERIFY_ENV } from '../fixtures/ganeti-env.ts';

const SECRETS = {
  OSP_IMG_PASSWD: 'pw-Zq81-never-shown',
  OSP_AUTH_KEYS: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIsecretkeymaterialXYZ user@host',
  OSP_CLOUD_USERDATA: Buffer.from('#cloud-config secret-userdata-Q7').toString('base64'),
  OSP_OS_PRODUCT_KEY: 'SECRT-KEYAA-BBBBB-CCCCC-DDDDD',
};
const HASH_SECRET = '$6$saltsalt$hashhashhashSECRETHASH';
const needles = [...Object.values(SECRETS), HASH_SECRET, 'secretkeymaterialXYZ'];

function assertClean(label: string, text: string): void {
  for (const needle of needles)
    assert.ok(!text.includes(needle), `${label} contains a secret: ${needle.slice(0, 12)}…`);
}

describe('secret parameters (built binary)', { skip: binaryMissingReason() }, () => {
  it('verify output never shows them, even when they are invalid', async () => {
    const node = makeNode();
    writeFileSync(join(node.imageDir, 'foo'), 'x');
    const r = await runScript('verify', {
      env: {
        ...VERIFY_ENV,
        ...SECRETS,
        OSP_IMG_PASSWD_HASH: HASH_SECRET,
        OSP_AUTH_KEYS: 'garbage secretkeymaterialXYZ',
        OSP_OS_PRODUCT_KEY: 'SECRT-KEYAA',
        SNF_IMAGE_CONFIG: node.configFile,
      },
      args: ['parameters'],
    });
    assert.equal(r.code, 1);
    assert.ok(r.stdout.toString().split('\n').length >= 3);
    assertClean('verify stdout', r.stdout.toString());
    assertClean('verify stderr', r.stderr);
  });

  it('create: not in the log, the monitor messages, any process argument or any child environment', async () => {
    const node = makeNode();
    const spy = join(node.root, 'spy');
    // The monitor records every process argument on the machine and its own environment.
    const monitor = join(node.root, 'monitor.sh');
    writeFileSync(
      monitor,
      `#!/bin/sh\nps -eo args > ${spy}.ps\ncat /proc/self/environ | tr '\\0' '\\n' > ${spy}.env\ncat > ${spy}.messages\n`,
    );
    chmodSync(monitor, 0o755);
    writeFileSync(node.configFile, `${readFileSync(node.configFile, 'utf8')}PROGRESS_MONITOR=${monitor}\n`);
    const image = join(node.imageDir, 'disk.img');
    writeFileSync(image, Buffer.alloc(4 * 1024 * 1024, 7));
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '8M', disk]);
    const r = await runScript('create', {
      env: {
        ...CREATE_ENV,
        ...SECRETS,
        OSP_IMG_ID: 'disk.img',
        OSP_IMG_PROPERTIES: '{"EXCLUDE_ALL_TASKS": "yes"}',
        OSP_OS_PRODUCT_KEY: '',
        DISK_0_PATH: disk,
        SNF_IMAGE_CONFIG: node.configFile,
        DEBUG_LEVEL: '1',
      },
    });
    assertClean('create stderr', r.stderr);
    assertClean('create stdout', r.stdout.toString());
    for (const file of readdirSync(node.root).filter((f) => f.startsWith('spy')))
      assertClean(file, readFileSync(join(node.root, file), 'utf8'));
    const env = readFileSync(`${spy}.env`, 'utf8');
    assert.doesNotMatch(env, /^OSP_/m, 'the monitor inherited OSP_* variables');
    assert.match(readFileSync(`${spy}.messages`, 'utf8'), /"type":"image-info"/);
  });

  it('a failing create reports the reason without the secret', async () => {
    const node = makeNode();
    const r = await runScript('create', {
      env: {
        ...CREATE_ENV,
        ...SECRETS,
        OSP_IMG_ID: `missing-${SECRETS.OSP_IMG_PASSWD}`,
        SNF_IMAGE_CONFIG: node.configFile,
      },
    });
    assert.equal(r.code, 1);
    assertClean('create stderr', r.stderr);
  });
});
