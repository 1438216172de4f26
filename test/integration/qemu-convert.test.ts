/**
 * qemu-img convert of an untrusted image runs unprivileged: as HELPER_USER, no groups, no
 * capabilities, no_new_privs, under resource limits, and with neither the image nor the
 * disk open to it by name (both are root-only here); the result is still cmp-equal to the
 * raw image, onto a file and onto a loop device. A stand-in qemu-img on PATH holds the
 * conversion for a moment so that /proc shows who runs it and with which limits.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { convertToDisk } from '../../src/image/qemu-img.ts';
import { LOCK_DIR } from '../../src/util/private-uid.ts';
import { notRootReason } from '../support/binary.ts';

const MiB = 1024 * 1024;

function missingToolReason(): string | false {
  for (const tool of ['qemu-img', 'qemu-storage-daemon', 'setpriv', 'prlimit']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `needs ${tool}`;
    }
  }
  return false;
}

const skip = notRootReason() || missingToolReason();
const work = mkdtempSync(join(tmpdir(), 'snf-convert-'));
const raw = join(work, 'raw.img');
const qcow2 = join(work, 'image.qcow2');
const wrapperDir = mkdtempSync(join(tmpdir(), 'snf-qemu-img-wrapper-'));
const savedPath = process.env.PATH;
const realQemuImg = skip ? '' : execFileSync('sh', ['-c', 'command -v qemu-img']).toString().trim();

interface Observed {
  status: string;
  limits: string;
}

/** Watches /proc for the stand-in qemu-img running `convert`; its status and limits. */
async function observeConverter(until: Promise<unknown>): Promise<Observed | undefined> {
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let cmdline: string[];
      try {
        cmdline = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0');
      } catch {
        continue;
      }
      if (!cmdline.includes(join(wrapperDir, 'qemu-img')) || !cmdline.includes('convert')) continue;
      try {
        return {
          status: readFileSync(`/proc/${entry}/status`, 'utf8'),
          limits: readFileSync(`/proc/${entry}/limits`, 'utf8'),
        };
      } catch {}
    }
    await sleep(20);
  }
  return undefined;
}

const field = (status: string, name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim();
const limit = (limits: string, name: string) =>
  new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(limits)?.slice(1, 3);

before(() => {
  if (skip) return;
  const img = Buffer.alloc(24 * MiB);
  for (let at = 0; at < img.length; at += 3 * MiB) randomBytes(700 * 1024).copy(img, at);
  writeFileSync(raw, img);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  // Root's alone: the converter cannot open the image, nor the directory it is in, by name.
  chmodSync(qcow2, 0o600);
  chmodSync(work, 0o700);
  writeFileSync(join(wrapperDir, 'qemu-img'), `#!/bin/sh\n[ "$1" = convert ] && sleep 1\nexec ${realQemuImg} "$@"\n`);
  chmodSync(join(wrapperDir, 'qemu-img'), 0o755);
  chmodSync(wrapperDir, 0o755);
  process.env.PATH = `${wrapperDir}:${savedPath ?? ''}`;
});

after(() => {
  process.env.PATH = savedPath;
});

describe('qemu-img convert, unprivileged', { skip }, () => {
  const sandbox = { user: 'nobody', timeoutSeconds: 120 };

  it('runs as HELPER_USER without groups or capabilities, under limits, and writes a cmp-equal disk (file)', async () => {
    const disk = join(work, 'disk-file');
    writeFileSync(disk, Buffer.alloc(32 * MiB, 0xff), { mode: 0o600 });
    let progress = 0;
    const converting = convertToDisk(qcow2, 'qcow2', disk, (f) => (progress = f), sandbox);
    const seen = await observeConverter(converting);
    await converting;
    assert.ok(seen, 'the converter was seen running');
    const nobody = execFileSync('id', ['-u', 'nobody']).toString().trim();
    assert.deepEqual(field(seen.status, 'Uid')?.split(/\s+/), [nobody, nobody, nobody, nobody], seen.status);
    assert.notEqual(nobody, '0');
    assert.equal(field(seen.status, 'Groups'), '', 'no supplementary groups');
    assert.equal(field(seen.status, 'NoNewPrivs'), '1');
    assert.equal(field(seen.status, 'CapBnd'), '0000000000000000');
    assert.equal(field(seen.status, 'CapEff'), '0000000000000000');
    for (const name of ['Max address space', 'Max cpu time', 'Max file size', 'Max open files']) {
      const [soft, hard] = limit(seen.limits, name) ?? [];
      assert.ok(soft !== undefined && soft !== 'unlimited' && soft === hard, `${name}: ${soft} ${hard}`);
    }
    assert.deepEqual(limit(seen.limits, 'Max file size'), ['0', '0'], 'writes no file itself');
    assert.equal(progress, 1);
    execFileSync('cmp', ['-n', String(24 * MiB), raw, disk]);
    assert.ok(
      readFileSync(disk)
        .subarray(24 * MiB)
        .every((b) => b === 0xff),
      'nothing written after the image',
    );
  });

  it('writes a cmp-equal disk onto a block device (a loop device)', async () => {
    const backing = join(work, 'loop-backing');
    writeFileSync(backing, Buffer.alloc(32 * MiB, 0xff), { mode: 0o600 });
    const loop = execFileSync('losetup', ['-f', '--show', backing]).toString().trim();
    try {
      await convertToDisk(qcow2, 'qcow2', loop, () => undefined, sandbox);
      execFileSync('cmp', ['-n', String(24 * MiB), raw, loop]);
    } finally {
      execFileSync('losetup', ['-d', loop]);
    }
  });

  it('with HELPER_UIDS: runs under a uid of its own from the range, released afterwards', async () => {
    const disk = join(work, 'disk-own-uid');
    writeFileSync(disk, Buffer.alloc(32 * MiB, 0xff), { mode: 0o600 });
    const range = { first: 1879048192, last: 1879113727 };
    const converting = convertToDisk(qcow2, 'qcow2', disk, () => undefined, { ...sandbox, uids: range });
    const seen = await observeConverter(converting);
    await converting;
    assert.ok(seen, 'the converter was seen running');
    const [uid, ...others] = field(seen.status, 'Uid')?.split(/\s+/).map(Number) ?? [];
    assert.ok(uid !== undefined && uid >= range.first && uid <= range.last, `uid ${uid} in the range`);
    assert.deepEqual(others, [uid, uid, uid]);
    assert.equal(field(seen.status, 'Gid')?.split(/\s+/)[0], String(uid));
    assert.ok(!existsSync(join(LOCK_DIR, String(uid))), 'the uid is released');
    execFileSync('cmp', ['-n', String(24 * MiB), raw, disk]);
  });

  it('refuses a HELPER_USER that is root, or unknown, with one line', async () => {
    const disk = join(work, 'disk-refused');
    writeFileSync(disk, Buffer.alloc(32 * MiB, 0xff));
    await assert.rejects(
      convertToDisk(qcow2, 'qcow2', disk, () => undefined, { ...sandbox, user: 'root' }),
      /^UserError: HELPER_USER: root has uid 0; qemu-img converts images as an unprivileged user$/,
    );
    await assert.rejects(
      convertToDisk(qcow2, 'qcow2', disk, () => undefined, { ...sandbox, user: 'no-such-user-snf' }),
      /^UserError: HELPER_USER: no user 'no-such-user-snf' on this host$/,
    );
    assert.ok(
      readFileSync(disk).every((b) => b === 0xff),
      'disk untouched',
    );
  });
});
