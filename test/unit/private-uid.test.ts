/**
 * Per-deployment helper uids: concurrent allocations never share a uid, a uid some process
 * runs under is skipped, a dead owner's lock is taken over, a live one is respected, an
 * exhausted range is refused in one line naming HELPER_UIDS.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { allocatePrivateUid, uidsInUse } from '../../src/util/private-uid.ts';

const root = mkdtempSync(join(tmpdir(), 'snf-uids-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const lockDir = () => join(root, `locks-${dirs++}`);
/** A range no helper of a concurrent test run uses. */
const BASE = 1879113000 + (process.pid % 500);

describe('helper uid allocation', () => {
  it('concurrent allocations get different uids; the range exhausted is refused in one line', async () => {
    const dir = lockDir();
    const range = { first: BASE, last: BASE + 9 };
    const got = await Promise.all(Array.from({ length: 10 }, () => allocatePrivateUid(range, dir)));
    assert.equal(new Set(got.map((g) => g.uid)).size, 10);
    for (const g of got) assert.equal(g.user, `${g.uid}:${g.uid}`);
    await assert.rejects(
      allocatePrivateUid(range, dir),
      /^UserError: HELPER_UIDS: every uid of \d+-\d+ is in use .*; widen the range$/,
    );
    await got[3]?.release();
    assert.equal((await allocatePrivateUid(range, dir)).uid, got[3]?.uid);
  });

  it("a dead owner's lock is taken over; a live owner's is respected; release removes only its own lock", async () => {
    const dir = lockDir();
    const range = { first: BASE + 20, last: BASE + 20 };
    const dead = spawnSync('true').pid as number;
    const first = await allocatePrivateUid(range, dir);
    const lock = join(dir, String(BASE + 20));
    writeFileSync(lock, JSON.stringify({ pid: dead, start: '1', nonce: 'gone' }));
    const taken = await allocatePrivateUid(range, dir);
    assert.equal(taken.uid, BASE + 20);
    await assert.rejects(allocatePrivateUid(range, dir), /HELPER_UIDS: every uid/);
    await first.release();
    assert.ok(existsSync(lock), 'the released handle was no longer the owner');
    await taken.release();
    assert.ok(!existsSync(lock));
  });

  it('skips a uid a process runs under', {
    skip: process.getuid?.() === 0 ? false : 'needs root (setpriv)',
  }, async () => {
    const busy = BASE + 30;
    const child = spawn('setpriv', [`--reuid=${busy}`, `--regid=${busy}`, '--clear-groups', 'sleep', '30'], {
      stdio: 'ignore',
    });
    try {
      while (!uidsInUse().has(busy)) await new Promise((r) => setTimeout(r, 20));
      const got = await allocatePrivateUid({ first: busy, last: busy + 1 }, lockDir());
      assert.equal(got.uid, busy + 1);
      await assert.rejects(allocatePrivateUid({ first: busy, last: busy }, lockDir()), /HELPER_UIDS: every uid/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
