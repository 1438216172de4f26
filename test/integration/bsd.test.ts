/**
 * BSD guests end to end: `create` with the real helper VM on disks made by
 * test/support/bsd-guest.ts (makefs FFS/UFS, disklabels written by the test), OSFAMILY and
 * ROOT_PARTITION auto-detected. Partition growth is checked on the deployed disk; the
 * mounted tasks (the helper's write-enabled ufs module) are checked file by file after the
 * helper has unmounted the filesystem: a second `create` (img_id=null, every other task
 * excluded) mounts it again and its CUSTOM_TASK sends the guest's /etc and /root back as
 * one base64 line (the host kernel has no ufs module to read them itself).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { diskPartitions as partitions } from '../support/partition-table.ts';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import {
  bsdToolsSkipReason,
  LAYOUTS,
  makeBsdGuest,
  OPENBSD_DUID,
  readSector,
  type BsdGuestLayout,
} from '../support/bsd-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';
import { parseDisklabel, usedPartitions } from '../../helper/bsd/disklabel.ts';
import { readUfsSuperblock, UFS_WRITE_UNAVAILABLE, ufsTypeOf } from '../../helper/bsd/ufs.ts';
import type { BsdFamily } from '../../helper/bsd/partition-types.ts';

const PASSWORD = 'Bsd-Secret-pw-4411';
const DISK_MIB = 64;
const DISK_SECTORS = DISK_MIB * 2048;
const skip = helperSkipReason() || bsdToolsSkipReason();
let helperDir = '';

interface Deployed {
  code: number | null;
  stderr: string;
  disk: string;
}

async function deploy(node: NodeFixture, layout: BsdGuestLayout, env: Record<string, string> = {}): Promise<Deployed> {
  makeBsdGuest(join(node.imageDir, 'bsd.img'), layout);
  const disk = join(node.root, 'disk0');
  execFileSync('truncate', ['-s', `${DISK_MIB}M`, disk]);
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: 'bsd.img',
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PASSWD: PASSWORD,
      DISK_0_PATH: disk,
      INSTANCE_NAME: 'bsd1.example.org',
      SNF_IMAGE_CONFIG: node.configFile,
      ...env,
    },
  });
  return { code: r.code, stderr: r.stderr, disk };
}

/** The CUSTOM_TASK of the read-back run: /etc and /root of the guest as one base64 line of a .tar.gz. */
const READ_BACK = Buffer.from(
  '#!/bin/sh\nexport PATH=/usr/sbin:/usr/bin:/sbin:/bin\ncd "$TARGET"\ntar -czf - --numeric-owner etc root | base64 -w0\necho\n',
).toString('base64');
const READ_BACK_ONLY = {
  CUSTOM_TASK: READ_BACK,
  ...Object.fromEntries(
    ['FixPartitionTable', 'FilesystemResizeMounted', 'AssignHostname', 'ConfigureNetwork', 'DeleteSSHKeys'].map((t) => [
      `EXCLUDE_TASK_${t}`,
      'yes',
    ]),
  ),
};

/** Mounts the deployed disk in the helper again and returns a directory holding its /etc and /root. */
async function readBack(node: NodeFixture, disk: string): Promise<{ dir: string; stderr: string }> {
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: 'null',
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PROPERTIES: JSON.stringify(READ_BACK_ONLY),
      DISK_0_PATH: disk,
      INSTANCE_NAME: 'reader.example.org',
      NIC_COUNT: '0',
      SNF_IMAGE_CONFIG: node.configFile,
    },
  });
  assert.equal(r.code, 0, `read-back run: ${r.stderr.split('\n').slice(-6).join('\n')}`);
  const line = /CUSTOM_TASK finished: ([A-Za-z0-9+/=]+)$/m.exec(r.stderr)?.[1];
  assert.ok(line, 'the read-back run printed the archive');
  const dir = mkdtempSync(join(tmpdir(), 'snf-bsd-readback-'));
  writeFileSync(join(dir, 'guest.tgz'), Buffer.from(line, 'base64'));
  execFileSync('tar', ['-xzf', join(dir, 'guest.tgz'), '--numeric-owner', '-C', dir]);
  return { dir, stderr: r.stderr };
}

const STATIC_NIC = { NIC_0_IP: '192.0.2.10', NIC_0_NETWORK_SUBNET: '192.0.2.0/24', NIC_0_NETWORK_GATEWAY: '192.0.2.1' };
const AUTH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBsdTestKeyForTheBsdFixtures000000000000 bsd-test';
const MOTD = 'Deployed by snf-image\n';
const PERSONALITY = JSON.stringify([
  { path: '/etc/motd', contents: Buffer.from(MOTD).toString('base64'), owner: 'root', group: 'operator', mode: 0o640 },
]);
/** What ConfigureNetwork writes for the static NIC (paravirtual: vtnet0 / vio0 / vioif0). */
const NETWORK: Record<BsdFamily, Array<[string, RegExp]>> = {
  freebsd: [
    ['etc/rc.conf', /^ifconfig_vtnet0="inet 192\.0\.2\.10 netmask 255\.255\.255\.0"$/m],
    ['etc/rc.conf', /^defaultrouter="192\.0\.2\.1"$/m],
  ],
  openbsd: [
    ['etc/hostname.vio0', /^inet 192\.0\.2\.10 255\.255\.255\.0 NONE$/m],
    ['etc/mygate', /^192\.0\.2\.1$/m],
  ],
  netbsd: [
    ['etc/ifconfig.vioif0', /192\.0\.2\.10/],
    ['etc/rc.conf', /^defaultroute="192\.0\.2\.1"$/m],
  ],
};
const HASH_PREFIX: Record<BsdFamily, string> = { freebsd: '$6$', openbsd: '$2b$', netbsd: '$2a$' };

const SKIP_MOUNTED = { OSP_IMG_PROPERTIES: '{"EXCLUDE_MOUNTED_TASKS": "yes"}' };

describe('BSD guests (real helper VM)', { skip, timeout: 2_400_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
  });
  const node = () => makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\n`);

  for (const family of ['openbsd', 'netbsd'] as const) {
    it(`${family} (MBR slice + disklabel): detected, slice and last label partition grown to the end of the disk, FFS untouched`, async () => {
      const layout = LAYOUTS[family];
      const r = await deploy(node(), layout, SKIP_MOUNTED);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`OSFAMILY=${family} ROOT_PARTITION=1`));
      assert.ok(!r.stderr.includes(PASSWORD), 'no secret in the log');
      const [slice] = partitions(r.disk);
      assert.deepEqual(
        [slice?.start, slice?.size],
        [layout.rootStart, DISK_SECTORS - layout.rootStart],
        'slice grown to the last sector',
      );
      const label = parseDisklabel(readSector(r.disk, layout.rootStart + 1), family);
      const used = usedPartitions(label, layout.rootStart);
      assert.deepEqual(
        used.map((p) => [p.letter, p.start, p.size]),
        [
          ['a', layout.rootStart, layout.rootSize - 8192],
          ['b', layout.rootStart + layout.rootSize - 8192, DISK_SECTORS - (layout.rootStart + layout.rootSize - 8192)],
        ],
      );
      assert.equal(label.secperunit, DISK_SECTORS);
      assert.equal(label.duid, family === 'openbsd' ? OPENBSD_DUID : '');
      assert.equal(ufsTypeOf(readSector(r.disk, layout.rootStart, 136)), '44bsd', 'the FFS superblock is intact');
    });
  }

  it('freebsd (GPT freebsd-ufs, UFS1, a /var UFS partition first): detected by GUID and /etc/fstab, last GPT partition grown, UFS untouched', async () => {
    const layout = { ...LAYOUTS.freebsd, varFirst: true };
    const r = await deploy(node(), layout, SKIP_MOUNTED);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /OSFAMILY=freebsd ROOT_PARTITION=3/,
      'neither freebsd-boot (1) nor the /var UFS without /etc/fstab (2) is the root',
    );
    const parts = partitions(r.disk);
    assert.equal(parts.length, 4);
    assert.equal(parts[3]!.start + parts[3]!.size, DISK_SECTORS - 33, 'the last partition reaches the backup GPT');
    assert.equal(ufsTypeOf(readSector(r.disk, layout.rootStart, 136)), '44bsd');
  });

  for (const family of ['freebsd', 'openbsd', 'netbsd'] as const) {
    it(`${family} (root last): every mounted task, read back from the unmounted filesystem file by file`, async () => {
      const n = node();
      const layout = { ...LAYOUTS[family], rootLast: true };
      const r = await deploy(n, layout, {
        ...STATIC_NIC,
        OSP_AUTH_KEYS: `${AUTH_KEY}\n`,
        OSP_IMG_PERSONALITY: PERSONALITY,
      });
      assert.equal(r.code, 0, r.stderr.split('\n').slice(-8).join('\n'));
      assert.ok(!r.stderr.includes(PASSWORD), 'no secret in the log');
      for (const task of [
        'MountImage',
        'FilesystemResizeMounted',
        'AssignHostname',
        'ChangePassword',
        'ConfigureNetwork',
        'DeleteSSHKeys',
        'EnforcePersonality',
        'UmountImage',
      ]) {
        assert.match(r.stderr, new RegExp(`task=${task} `), `${task} ran`);
      }
      const sb = readUfsSuperblock(readSector(r.disk, layout.rootStart, 136));
      assert.equal(sb?.clean, 1, 'the filesystem is marked clean after the helper unmounted it');
      const { dir } = await readBack(n, r.disk);
      try {
        const etc = (f: string) => readFileSync(join(dir, 'etc', f), 'utf8');
        if (family !== 'openbsd') assert.match(etc('rc.conf'), /^hostname="bsd1\.example\.org"$/m);
        if (family !== 'freebsd') assert.equal(etc('myname'), 'bsd1.example.org\n');
        const rootLine = etc('master.passwd')
          .split('\n')
          .find((l) => l.startsWith('root:')) as string;
        assert.ok(
          rootLine.split(':')[1]?.startsWith(HASH_PREFIX[family]),
          `root has a ${HASH_PREFIX[family]} hash: ${rootLine.split(':')[1]?.slice(0, 4)}`,
        );
        assert.equal(statSync(join(dir, 'etc/master.passwd')).mode & 0o777, 0o600);
        assert.ok(!existsSync(join(dir, 'etc/spwd.db')), 'the stale spwd.db is gone');
        assert.match(etc('rc.local'), /pwd_mkdb -p \/etc\/master\.passwd/);
        assert.ok(readFileSync(join(dir, 'root/.ssh/authorized_keys'), 'utf8').includes(AUTH_KEY));
        assert.equal(statSync(join(dir, 'root/.ssh/authorized_keys')).mode & 0o777, 0o600);
        assert.ok(!existsSync(join(dir, 'etc/ssh/ssh_host_ed25519_key')), "the image's host key is gone");
        for (const [file, pattern] of NETWORK[family]) assert.match(etc(file.slice(4)), pattern, file);
        assert.equal(etc('motd'), MOTD);
        const motd = statSync(join(dir, 'etc/motd'));
        assert.deepEqual(
          [motd.uid, motd.gid, motd.mode & 0o777],
          [0, 5, 0o640],
          'personality file owner, group and mode',
        );
        if (family === 'freebsd') assert.match(etc('rc.conf'), /^growfs_enable="YES"$/m);
        if (family === 'netbsd') assert.match(etc('rc.conf'), /^resize_root="YES"$/m);
        if (family === 'openbsd') assert.match(r.stderr, /OpenBSD cannot grow a mounted root/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('FreeBSD metadata check hashes are turned off before Linux writes; a filesystem not cleanly unmounted is refused', async () => {
    const n = node();
    const layout = { ...LAYOUTS.freebsd, rootLast: true };
    const image = join(n.imageDir, 'hashed.img');
    makeBsdGuest(image, layout);
    const sbAt = layout.rootStart * 512 + 8192;
    const sb = Buffer.from(readSector(image, layout.rootStart + 16, 4));
    sb.writeUInt8(sb.readUInt8(211) | 0x80, 211);
    sb.writeUInt32LE(0x200 | 0x2, 1312);
    sb.writeUInt32LE(0x7, 1308);
    execFileSync('dd', [`of=${image}`, 'bs=1', `seek=${sbAt}`, 'conv=notrunc', 'status=none'], { input: sb });
    const disk = join(n.root, 'disk0');
    execFileSync('truncate', ['-s', `${DISK_MIB}M`, disk]);
    const r = await runScript('create', {
      env: {
        ...CREATE_ENV,
        OSP_IMG_ID: 'hashed.img',
        OSP_IMG_FORMAT: 'diskdump',
        OSP_IMG_PASSWD: PASSWORD,
        DISK_0_PATH: disk,
        SNF_IMAGE_CONFIG: n.configFile,
      },
    });
    assert.equal(r.code, 0, r.stderr.split('\n').slice(-6).join('\n'));
    assert.match(r.stderr, /FreeBSD metadata check hashes \(fs_metackhash 0x7\) turned off/);
    const after = readUfsSuperblock(readSector(disk, layout.rootStart, 136));
    assert.deepEqual(
      [after?.metackhash, (after?.flags ?? 0) & 0x202, after?.clean],
      [0, 0x2, 1],
      'hashes off, soft updates kept, clean',
    );

    const dirty = join(n.imageDir, 'dirty.img');
    makeBsdGuest(dirty, { ...LAYOUTS.netbsd, rootLast: true });
    execFileSync(
      'dd',
      [`of=${dirty}`, 'bs=1', `seek=${LAYOUTS.netbsd.rootStart * 512 + 8192 + 209}`, 'conv=notrunc', 'status=none'],
      { input: Buffer.from([0]) },
    );
    const d = await runScript('create', {
      env: {
        ...CREATE_ENV,
        OSP_IMG_ID: 'dirty.img',
        OSP_IMG_FORMAT: 'diskdump',
        OSP_IMG_PASSWD: PASSWORD,
        DISK_0_PATH: disk,
        SNF_IMAGE_CONFIG: n.configFile,
      },
    });
    assert.notEqual(d.code, 0);
    assert.match(
      d.stderr,
      /the netbsd filesystem on \/dev\/\w+ was not cleanly unmounted \(fs_clean 0\): run fsck_ffs on it in netbsd/,
    );
  });

  it("a helper built with --no-ufs-write (Debian's read-only ufs module) stops create with one line saying so; its manifest says ufsWrite false", async () => {
    const stock = ensureHelper({ ufsWrite: false });
    assert.equal(
      (JSON.parse(readFileSync(join(stock, 'manifest.json'), 'utf8')) as { ufsWrite?: boolean }).ufsWrite,
      false,
    );
    assert.equal(
      (JSON.parse(readFileSync(join(helperDir, 'manifest.json'), 'utf8')) as { ufsWrite?: boolean }).ufsWrite,
      true,
    );
    const r = await deploy(makeNode(`HELPER_DIR=${stock}\nHELPER_SOFT_TIMEOUT=900\n`), {
      ...LAYOUTS.openbsd,
      rootLast: true,
    });
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(UFS_WRITE_UNAVAILABLE), r.stderr.split('\n').slice(-6).join('\n'));
    assert.ok(!r.stderr.includes(PASSWORD), 'no secret in the log');
  });

  it('a hostile disklabel (root partition past the end of its slice) is refused with one line', async () => {
    const r = await deploy(node(), { ...LAYOUTS.netbsd, labelRootSize: 50_000 }, SKIP_MOUNTED);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /netbsd disklabel: disklabel partition a \(sectors 63\+50000\) lies outside its slice/);
  });
});
