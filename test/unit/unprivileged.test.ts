/** HELPER_USER as the converter's user: uid and gid from id(1); uid 0 and group 0 refused. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveUnprivilegedUser } from '../../src/image/unprivileged.ts';

/** Runs `body` with a stand-in id(1) that prints `line` for any user. */
async function withId(line: string, body: () => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'snf-fake-id-'));
  writeFileSync(join(dir, 'id'), `#!/bin/sh\necho '${line}'\n`);
  chmodSync(join(dir, 'id'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path ?? ''}`;
  try {
    await body();
  } finally {
    process.env.PATH = path;
  }
}

describe('the unprivileged user (HELPER_USER)', () => {
  it('takes the uid and primary gid id(1) reports', async () => {
    await withId('uid=4242(conv) gid=4343(conv) groups=4343(conv),6(disk)', async () => {
      assert.deepEqual(await resolveUnprivilegedUser('conv', 'x'), { name: 'conv', uid: 4242, gid: 4343 });
    });
  });

  it('refuses uid 0 and primary group 0 with one line', async () => {
    await withId('uid=0(toor) gid=0(root) groups=0(root)', async () => {
      await assert.rejects(
        resolveUnprivilegedUser('toor', 'qemu-img converts images'),
        /^UserError: HELPER_USER: toor has uid 0; qemu-img converts images as an unprivileged user$/,
      );
    });
    await withId('uid=4242(conv) gid=0(root) groups=0(root)', async () => {
      await assert.rejects(
        resolveUnprivilegedUser('conv', 'qemu-img converts images'),
        /^UserError: HELPER_USER: conv has group 0 \(root\) as its primary group; qemu-img converts images as an unprivileged user$/,
      );
    });
  });
});
