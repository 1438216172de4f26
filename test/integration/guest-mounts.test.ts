/**
 * Mount options of the image's filesystems, seen in /proc/self/mountinfo while they are
 * mounted on this machine (root, loop devices): the NTFS mounts (ntfs-3g) and the
 * read-only probes of detection are nosuid, nodev and noexec, like every guest mount the
 * helper makes where nothing of the image is executed. And UmountImage unmounts the
 * guest's filesystems where they are, whatever links the guest grew meanwhile.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { HelperContext } from '../../helper/context.ts';
import { withProbeMount } from '../../helper/probe.ts';
import { umountImage } from '../../helper/tasks/mount.ts';
import { mountNtfs, umountNtfs } from '../../helper/windows/ntfs.ts';
import { notRootReason } from '../support/binary.ts';

const ntfsMissing =
  spawnSync('sh', ['-c', 'command -v mkntfs && command -v lowntfs-3g']).status === 0
    ? false
    : 'mkntfs and lowntfs-3g are not installed (apt-get install ntfs-3g)';

/** Options of the mount at `where` (mount options and superblock options). */
function mountOptions(where: string): string[] {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === where);
  assert.ok(line, `${where} is mounted`);
  const fields = line.split(' ');
  return [...(fields[5] ?? '').split(','), ...(fields[fields.indexOf('-') + 3] ?? '').split(',')];
}

describe('guest mount options (this machine)', { skip: notRootReason() }, () => {
  const work = mkdtempSync(join(tmpdir(), 'snf-mounts-'));
  const loops: string[] = [];
  const loop = (file: string) => {
    const dev = execFileSync('losetup', ['-f', '--show', file]).toString().trim();
    loops.push(dev);
    return dev;
  };
  after(() => {
    for (const dev of loops) spawnSync('losetup', ['-d', dev]);
    rmSync(work, { recursive: true, force: true });
  });

  it('NTFS volumes are mounted nosuid, nodev, noexec (read-write and read-only)', { skip: ntfsMissing }, async () => {
    const image = join(work, 'ntfs.img');
    execFileSync('truncate', ['-s', '16M', image]);
    execFileSync('mkntfs', ['-q', '-F', '-Q', image], { stdio: 'ignore' });
    const dev = loop(image);
    const where = join(work, 'ntfs');
    mkdirSync(where);
    for (const readOnly of [false, true]) {
      await mountNtfs(dev, where, readOnly);
      try {
        const options = mountOptions(where);
        for (const wanted of ['nosuid', 'nodev', 'noexec', readOnly ? 'ro' : 'rw'])
          assert.ok(options.includes(wanted), `${wanted} in ${options.join(',')}`);
      } finally {
        await umountNtfs(where);
      }
    }
  });

  it('detection probes ext4 read-only, nosuid, nodev, noexec, without replaying its journal', async () => {
    const image = join(work, 'ext4.img');
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', image, '16M']);
    const dev = loop(image);
    const where = join(work, 'probe');
    const seen = await withProbeMount(dev, 'ext4', where, () => mountOptions(where));
    for (const wanted of ['ro', 'nosuid', 'nodev', 'noexec', 'norecovery'])
      assert.ok(seen?.includes(wanted), `${wanted} in ${seen?.join(',')}`);
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${where} `), false, 'unmounted afterwards');
  });

  it('UmountImage unmounts what MountImage mounted even when an ancestor of a mount point became a link out of the guest', async () => {
    const mounted = (where: string) =>
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .some((l) => l.split(' ')[4] === where);
    const target = join(work, 'target');
    const decoy = join(work, 'decoy');
    mkdirSync(target);
    mkdirSync(join(decoy, 'run'), { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'snf-decoy', join(decoy, 'run')]);
    try {
      execFileSync('mount', ['-t', 'tmpfs', 'snf-root', target]);
      mkdirSync(join(target, 'var/x/run'), { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', 'snf-var-x-run', join(target, 'var/x/run')]);
      // What an override could do between MountImage and UmountImage: move the directory
      // holding a mount point aside and put a link out of the guest in its place.
      renameSync(join(target, 'var/x'), join(target, 'var/y'));
      symlinkSync(decoy, join(target, 'var/x'));
      const ctx = {
        target,
        mounts: [target, join(target, 'var/x/run')],
        properties: {},
        warn: () => undefined,
        info: () => undefined,
      } as unknown as HelperContext;
      await umountImage(ctx);
      assert.ok(mounted(join(decoy, 'run')), 'the mount the link points at is left alone');
      assert.equal(mounted(target), false, 'the guest root is unmounted');
      assert.equal(mounted(join(target, 'var/y/run')), false, 'the moved mount is unmounted');
    } finally {
      spawnSync('umount', ['-R', '-l', target]);
      spawnSync('umount', ['-l', join(decoy, 'run')]);
    }
  });
});
