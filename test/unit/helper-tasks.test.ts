import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveInGuest } from '../../helper/guest-path.ts';
import { GuestFs } from '../../helper/guest-files.ts';
import {
  authorizedKeysPath,
  assignHostname,
  changeMachineId,
  distroFamily,
  hostsWithName,
  shadowWithPassword,
} from '../../helper/os/linux.ts';
import { parseFstab } from '../../helper/tasks/mount.ts';
import { decide } from '../../helper/runner.ts';
import { tableProblems, TASKS } from '../../helper/task-table.ts';
import { lastPartition, partitionNode } from '../../helper/disks.ts';
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';

function guestRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'snf-guest-'));
  mkdirSync(join(root, 'etc'));
  return root;
}

describe('task table', () => {
  it('orders honour every run-after and run-before', () => {
    assert.deepEqual(tableProblems(), []);
    assert.deepEqual(tableProblems([{ ...TASKS[0]!, runAfter: ['UmountImage'] }, ...TASKS.slice(1)]), [
      'FixPartitionTable (10) must run after UmountImage (80)',
    ]);
  });

  it('decides per OS family, EXCLUDE_* properties and required inputs', () => {
    const config = { secrets: {}, personality: [] } as unknown as ConfigDocument;
    const task = (name: string) => TASKS.find((t) => t.name === name)!;
    const linux = { OSFAMILY: 'linux' };
    assert.deepEqual(decide(task('AssignHostname'), { properties: linux, config }), { run: true });
    assert.equal(decide(task('ChangeMachineId'), { properties: { OSFAMILY: 'freebsd' }, config }).run, false);
    assert.deepEqual(decide(task('AssignHostname'), { properties: { OSFAMILY: 'freebsd' }, config }), { run: true });
    assert.deepEqual(
      decide(task('AssignHostname'), { properties: { ...linux, EXCLUDE_TASK_ASSIGNHOSTNAME: 'yes' }, config }),
      { run: false, why: 'excluded by EXCLUDE_TASK_AssignHostname', warn: true },
    );
    assert.equal(
      decide(task('MountImage'), { properties: { ...linux, EXCLUDE_TASK_MOUNTIMAGE: 'yes' }, config }).run,
      true,
      'MountImage is not excludable',
    );
    assert.equal(
      decide(task('FilesystemResizeUnmounted'), {
        properties: { ...linux, EXCLUDE_FILESYSTEMRESIZE_TASKS: 'yes' },
        config,
      }).run,
      false,
    );
    assert.equal(
      decide(task('DeleteSSHKeys'), { properties: { ...linux, EXCLUDE_MOUNTED_TASKS: 'yes' }, config }).run,
      false,
    );
    assert.equal(decide(task('FixPartitionTable'), { properties: { ...linux, CLOUD_INIT: 'yes' }, config }).run, false);
    assert.equal(decide(task('ChangePassword'), { properties: linux, config }).run, false);
    assert.equal(
      decide(task('ChangePassword'), { properties: linux, config: { ...config, secrets: { authKeys: 'k' } } }).run,
      true,
    );
    assert.equal(decide(task('EnforcePersonality'), { properties: linux, config }).run, false);
  });
});

describe('guest paths', () => {
  it('follows symlinks inside the guest only', () => {
    const root = guestRoot();
    symlinkSync('/etc/../../../../etc/shadow-target', join(root, 'etc', 'evil'));
    symlinkSync('../../..', join(root, 'etc', 'up'));
    assert.equal(resolveInGuest(root, '/etc/evil'), join(root, 'etc/shadow-target'));
    assert.equal(resolveInGuest(root, '/etc/up/x'), join(root, 'x'));
    assert.equal(resolveInGuest(root, '/../../etc/passwd'), join(root, 'etc/passwd'));
    assert.equal(resolveInGuest(root, '/etc/evil', false), join(root, 'etc/evil'));
  });

  it('a symlinked /etc/shadow pointing outside the root is written inside it', () => {
    const root = guestRoot();
    const outside = mkdtempSync(join(tmpdir(), 'snf-outside-'));
    writeFileSync(join(outside, 'shadow'), 'host data');
    symlinkSync(join(outside, 'shadow'), join(root, 'etc', 'shadow'));
    new GuestFs(root).write('/etc/shadow', 'guest data');
    assert.equal(readFileSync(join(outside, 'shadow'), 'utf8'), 'host data');
    assert.ok(!lstatSync(join(root, 'etc', 'shadow')).isSymbolicLink(), 'the planted link is replaced, not followed');
    assert.equal(readFileSync(join(root, 'etc', 'shadow'), 'utf8'), 'guest data');
  });

  it('replaces files atomically, keeping mode and owner', () => {
    const root = guestRoot();
    writeFileSync(join(root, 'etc/shadow'), 'x', { mode: 0o640 });
    new GuestFs(root).write('/etc/shadow', 'y');
    assert.equal(statSync(join(root, 'etc/shadow')).mode & 0o777, 0o640);
    assert.ok(!lstatSync(join(root, 'etc/shadow')).isSymbolicLink());
  });
});

describe('Linux adapter', () => {
  it('writes the hostname and the 127.0.1.1 line per distribution', () => {
    const root = guestRoot();
    writeFileSync(join(root, 'etc/os-release'), 'ID=debian\n');
    writeFileSync(join(root, 'etc/hostname'), 'template-host\n');
    writeFileSync(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n127.0.1.1\ttemplate-host\n');
    const fs = new GuestFs(root);
    assert.equal(distroFamily(fs), 'debian');
    assert.deepEqual(assignHostname(fs, 'inst1.gnt.test'), ['/etc/hostname', '/etc/hosts']);
    assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), 'inst1.gnt.test\n');
    assert.equal(
      readFileSync(join(root, 'etc/hosts'), 'utf8'),
      '127.0.0.1\tlocalhost\n127.0.1.1\tinst1.gnt.test inst1\n',
    );
    assert.equal(hostsWithName('127.0.0.1 localhost\n', 'h'), '127.0.0.1 localhost\n127.0.1.1\th\n');
  });

  it('knows the distribution families', () => {
    for (const [release, family] of [
      ['ID=fedora', 'redhat'],
      ['ID=ubuntu\nID_LIKE=debian', 'debian'],
      ['ID="opensuse-leap"\nID_LIKE="suse opensuse"', 'suse'],
      ['ID=arch', 'arch'],
      ['ID=alpine', 'alpine'],
      ['ID=gentoo', 'gentoo'],
      ['ID=rocky\nID_LIKE="rhel centos fedora"', 'redhat'],
    ] as const) {
      const root = guestRoot();
      writeFileSync(join(root, 'etc/os-release'), release);
      assert.equal(distroFamily(new GuestFs(root)), family, release);
    }
  });

  it('changes only the password and last-change fields of the shadow lines', () => {
    const shadow = 'root:$6$old$x:19000:0:99999:7:::\nuser:!:19000:1:90:14:30:20000:\n';
    assert.equal(
      shadowWithPassword(shadow, ['root', 'user'], '$y$new', 20000),
      'root:$y$new:20000:0:99999:7:::\nuser:$y$new:20000:1:90:14:30:20000:\n',
    );
    assert.throws(() => shadowWithPassword(shadow, ['nobody'], '$y$', 1), /user\(s\) nobody do not exist/);
  });

  it('finds the authorized keys file sshd uses', () => {
    assert.equal(authorizedKeysPath('', 'root', '/root'), '/root/.ssh/authorized_keys');
    assert.equal(authorizedKeysPath('AuthorizedKeysFile .ssh/keys .ssh/other', 'u', '/home/u'), '/home/u/.ssh/keys');
    assert.equal(authorizedKeysPath('AuthorizedKeysFile /etc/ssh/keys/%u', 'u', '/home/u'), '/etc/ssh/keys/u');
    assert.equal(authorizedKeysPath('AuthorizedKeysFile none', 'u', '/home/u'), undefined);
  });

  it('gives a new machine id only where the image has one', () => {
    const root = guestRoot();
    const fs = new GuestFs(root);
    assert.equal(changeMachineId(fs), false);
    writeFileSync(join(root, 'etc/machine-id'), 'uninitialized\n');
    assert.equal(changeMachineId(fs), false);
    writeFileSync(join(root, 'etc/machine-id'), `${'a'.repeat(32)}\n`);
    assert.equal(changeMachineId(fs), true);
    assert.match(readFileSync(join(root, 'etc/machine-id'), 'utf8'), /^[0-9a-f]{32}\n$/);
    assert.notEqual(readFileSync(join(root, 'etc/machine-id'), 'utf8'), `${'a'.repeat(32)}\n`);
  });
});

describe('fstab and partitions', () => {
  it('parses fstab entries', () => {
    assert.deepEqual(
      parseFstab(
        '# c\nUUID=abc / ext4 errors=remount-ro 0 1\nUUID=def /boot ext4 defaults 0 2\n/dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0\n',
      ),
      [
        { source: 'UUID=abc', mountPoint: '/', type: 'ext4', options: 'errors=remount-ro' },
        { source: 'UUID=def', mountPoint: '/boot', type: 'ext4', options: 'defaults' },
        { source: '/dev/sr0', mountPoint: '/media/cdrom0', type: 'udf,iso9660', options: 'user,noauto' },
      ],
    );
  });

  it('picks the partition to grow, logical ones included', () => {
    const p = (number: number, start: number, type = '83') => ({
      number,
      node: `/dev/vdb${number}`,
      start,
      size: 100,
      type,
    });
    assert.equal(
      lastPartition({
        device: '/dev/vdb',
        type: 'dos',
        sectorSize: 512,
        sectors: 1000,
        partitions: [p(1, 2048), p(2, 4096, '5'), p(5, 6144), p(6, 8192)],
      })?.number,
      6,
    );
    assert.equal(
      lastPartition({
        device: '/dev/vdb',
        type: 'gpt',
        sectorSize: 512,
        sectors: 1000,
        partitions: [p(1, 2048), p(2, 4096), p(3, 8192)],
      })?.number,
      3,
    );
    assert.equal(partitionNode('/dev/vdb', 2), '/dev/vdb2');
    assert.equal(partitionNode('/dev/loop0', 2), '/dev/loop0p2');
  });
});
