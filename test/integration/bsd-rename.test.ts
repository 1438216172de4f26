/**
 * Issue 17 item 5: `rename` of a BSD guest in the real helper VM. A FreeBSD and an OpenBSD
 * guest (test/support/bsd-guest.ts) are created as bsd1, renamed to bsd2, and read back as
 * bsd.test.ts does (a `create` with img_id=null whose CUSTOM_TASK sends /etc back: the host
 * has no ufs module): the hostname files name bsd2 only.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';
import { runScript } from '../support/binary.ts';
import { bsdToolsSkipReason, LAYOUTS, makeBsdGuest } from '../support/bsd-guest.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';

const skip = helperSkipReason() || bsdToolsSkipReason();
const nodes: NodeFixture[] = [];

/** The guest's /etc as the helper mounts it, through a CUSTOM_TASK of a second create (nothing else runs). */
async function readEtc(node: NodeFixture, disk: string): Promise<string> {
  const task =
    '#!/bin/sh\nexport PATH=/usr/sbin:/usr/bin:/sbin:/bin\ncd "$SNF_IMAGE_TARGET"\ntar -czf - etc | base64 -w0\necho\n';
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: 'null',
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PROPERTIES: JSON.stringify({
        CUSTOM_TASK: Buffer.from(task).toString('base64'),
        ...Object.fromEntries(
          ['FixPartitionTable', 'FilesystemResizeMounted', 'AssignHostname', 'ConfigureNetwork', 'DeleteSSHKeys'].map(
            (t) => [`EXCLUDE_TASK_${t}`, 'yes'],
          ),
        ),
      }),
      DISK_0_PATH: disk,
      INSTANCE_NAME: 'reader.example.org',
      NIC_COUNT: '0',
      SNF_IMAGE_CONFIG: node.configFile,
    },
  });
  assert.equal(r.code, 0, `read-back run: ${r.stderr.split('\n').slice(-6).join('\n')}`);
  const line = /CUSTOM_TASK finished: ([A-Za-z0-9+/=]+)$/m.exec(r.stderr)?.[1];
  assert.ok(line, 'the read-back run printed the archive');
  const dir = mkdtempSync(join(tmpdir(), 'snf-bsd-rename-'));
  nodes.push({ root: dir, configFile: '', imageDir: '', variantsDir: '' });
  writeFileSync(join(dir, 'etc.tgz'), Buffer.from(line, 'base64'));
  execFileSync('tar', ['-xzf', join(dir, 'etc.tgz'), '-C', dir]);
  return dir;
}

describe('rename of BSD guests (real helper VM)', { skip, timeout: 3_600_000 }, () => {
  let helperDir = '';
  before(() => {
    helperDir = ensureHelper();
  });
  after(() => {
    for (const node of nodes) rmSync(node.root, { recursive: true, force: true });
  });

  for (const family of ['freebsd', 'openbsd'] as const) {
    it(`${family}: rename changes the hostname the guest boots with, and only that`, async () => {
      const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\n`);
      nodes.push(node);
      makeBsdGuest(join(node.imageDir, 'bsd.img'), { ...LAYOUTS[family], rootLast: true });
      const disk = join(node.root, 'disk0');
      execFileSync('truncate', ['-s', '64M', disk]);
      const env = {
        ...CREATE_ENV,
        OSP_IMG_ID: 'bsd.img',
        OSP_IMG_FORMAT: 'diskdump',
        DISK_0_PATH: disk,
        SNF_IMAGE_CONFIG: node.configFile,
      };
      const created = await runScript('create', { env: { ...env, INSTANCE_NAME: 'bsd1.example.org' } });
      assert.equal(created.code, 0, created.stderr.split('\n').slice(-8).join('\n'));
      const renamed = await runScript('rename', {
        env: { ...env, INSTANCE_NAME: 'bsd2.example.org', OLD_INSTANCE_NAME: 'bsd1.example.org' },
      });
      assert.equal(renamed.code, 0, renamed.stderr.split('\n').slice(-8).join('\n'));
      assert.match(renamed.stderr, /task=AssignHostname /, 'the hostname task ran');
      assert.doesNotMatch(renamed.stderr, /task=(ChangePassword|ConfigureNetwork|DeleteSSHKeys|FixPartitionTable) /);
      const dir = await readEtc(node, disk);
      const etc = (f: string) => readFileSync(join(dir, 'etc', f), 'utf8');
      if (family === 'freebsd') {
        assert.match(etc('rc.conf'), /^hostname="bsd2\.example\.org"$/m);
        assert.doesNotMatch(etc('rc.conf'), /bsd1/);
      } else {
        assert.equal(etc('myname'), 'bsd2.example.org\n');
      }
    });
  }
});
