/**
 * Disk layouts and distributions in real helper VMs, on synthetic guests: btrfs and xfs
 * roots grown while mounted (FilesystemResizeMounted), an ext4 root in a logical partition
 * grown with its extended partition, and Red Hat, SUSE, Arch and Alpine trees getting their
 * hostname files and their network system's configuration.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { diskPartitions as partitions, type SfdiskPartition } from '../support/partition-table.ts';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { makeSyntheticGuest, readGuestFile, rootStartSector, type GuestOptions } from '../support/synthetic-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const skip = helperSkipReason();
const missing = (tool: string, pkg: string): string | false =>
  spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
    ? false
    : `${tool} is not installed (apt-get install ${pkg})`;
const DISK_MIB = 160;
const STATIC_NIC = { NIC_0_IP: '192.0.2.10', NIC_0_NETWORK_SUBNET: '192.0.2.0/24', NIC_0_NETWORK_GATEWAY: '192.0.2.1' };
let helperDir = '';
const nodes: NodeFixture[] = [];

/** Runs `inspect` on a copy of one partition of the disk (nothing is mounted). */
function onPartition<T>(disk: string, part: SfdiskPartition, inspect: (file: string) => T): T {
  const file = `${disk}.part`;
  execFileSync('dd', [`if=${disk}`, `of=${file}`, 'bs=512', `skip=${part.start}`, `count=${part.size}`, 'status=none']);
  try {
    return inspect(file);
  } finally {
    rmSync(file, { force: true });
  }
}

function filesystemBytes(type: 'btrfs' | 'xfs' | 'ext4', file: string): number {
  if (type === 'btrfs')
    return Number(
      /^total_bytes\s+(\d+)/m.exec(execFileSync('btrfs', ['inspect-internal', 'dump-super', file]).toString())?.[1],
    );
  if (type === 'xfs') {
    const out = execFileSync('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p dblocks', '-c', 'p blocksize', file]).toString();
    return Number(/dblocks = (\d+)/.exec(out)?.[1]) * Number(/blocksize = (\d+)/.exec(out)?.[1]);
  }
  const out = execFileSync('dumpe2fs', ['-h', file], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  return Number(/^Block count:\s+(\d+)/m.exec(out)?.[1]) * Number(/^Block size:\s+(\d+)/m.exec(out)?.[1]);
}

async function deploy(guest: GuestOptions, env: Record<string, string> = {}, diskMiB = DISK_MIB) {
  const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\n`);
  nodes.push(node);
  makeSyntheticGuest(join(node.imageDir, 'guest.img'), guest);
  const disk = join(node.root, 'disk0');
  execFileSync('truncate', ['-s', `${diskMiB}M`, disk]);
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: 'guest.img',
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PASSWD: 'Layouts-pw-1',
      DISK_0_PATH: disk,
      INSTANCE_NAME: 'vm1.example.org',
      SNF_IMAGE_CONFIG: node.configFile,
      ...env,
    },
  });
  return { ...r, disk };
}

const read = (disk: string, guest: GuestOptions, path: string) => readGuestFile(disk, path, rootStartSector(guest));

describe('Linux layouts and distributions in the helper VM (real QEMU)', { skip, timeout: 3_600_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
  });
  after(() => {
    for (const node of nodes) rmSync(node.root, { recursive: true, force: true });
  });

  for (const type of ['btrfs', 'xfs'] as const) {
    // The kernel resizes btrfs to 256 MiB or more only.
    const diskMiB = type === 'btrfs' ? 320 : DISK_MIB;
    it(`a ${type} root grows to the end of the disk while mounted`, {
      skip: type === 'xfs' ? missing('mkfs.xfs', 'xfsprogs') : missing('mkfs.btrfs', 'btrfs-progs'),
    }, async () => {
      const r = await deploy({ rootFs: type, rootMiB: 64 }, {}, diskMiB);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /task FilesystemResizeMounted finished/);
      const [root] = partitions(r.disk);
      assert.ok(root);
      assert.equal(root.start + root.size, diskMiB * 2048, 'partition grown to the disk end');
      const bytes = onPartition(r.disk, root, (file) => filesystemBytes(type, file));
      assert.ok(bytes > (diskMiB - 10) * 1048576, `${type} grown from 64 MiB to ${bytes} bytes`);
      assert.ok(bytes <= root.size * 512);
    });
  }

  it('an ext4 root in a logical partition grows with its extended partition', async () => {
    const guest: GuestOptions = { layout: 'logical' };
    const r = await deploy(guest);
    assert.equal(r.code, 0, r.stderr);
    const parts = partitions(r.disk);
    const extended = parts.find((p) => p.type === '5');
    const logical = parts.find((p) => /p?5$/.test(p.node));
    assert.ok(extended && logical);
    assert.equal(extended.start + extended.size, DISK_MIB * 2048);
    assert.equal(logical.start + logical.size, DISK_MIB * 2048);
    assert.ok(onPartition(r.disk, logical, (file) => filesystemBytes('ext4', file)) > 150 * 1048576);
    assert.equal(read(r.disk, guest, '/etc/hostname'), 'vm1.example.org\n');
  });

  it('an LVM root (fstab: /dev/mapper/...) grows: partition, pvresize, lvextend +100%FREE, then ext4; detected without ROOT_PARTITION', {
    skip: missing('lvm', 'lvm2'),
  }, async () => {
    const guest: GuestOptions = { lvmVolumeGroup: 'snf-vg' };
    const r = await deploy(guest);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ROOT_PARTITION=1/);
    assert.match(r.stderr, /\/dev\/snf-vg\/root extended by \d+ extents of snf-vg/);
    const [pv] = partitions(r.disk);
    assert.ok(pv);
    assert.equal(pv.start + pv.size, DISK_MIB * 2048);
    // The logical volume starts 1 MiB into the physical volume (pe_start); it now spans the rest.
    const bytes = onPartition(r.disk, { ...pv, start: pv.start + 2048, size: pv.size - 2048 }, (file) =>
      filesystemBytes('ext4', file),
    );
    assert.ok(bytes > 150 * 1048576, `ext4 on the volume grown to ${bytes} bytes`);
    assert.equal(readGuestFile(r.disk, '/etc/hostname', pv.start + 2048), 'vm1.example.org\n');
  });

  it('Red Hat family: hostname in /etc/hostname and /etc/sysconfig/network, ifcfg file, SELinux relabel', async () => {
    const guest: GuestOptions = {
      osRelease: 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n',
      files: {
        'etc/sysconfig/network': 'NETWORKING=yes\nHOSTNAME=template-host\n',
        'etc/sysconfig/network-scripts/ifcfg-lo': 'DEVICE=lo\n',
      },
      executables: { 'usr/lib/systemd/systemd-udevd': '' },
    };
    const r = await deploy(guest, STATIC_NIC);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(read(r.disk, guest, '/etc/hostname'), 'vm1.example.org\n');
    assert.match(read(r.disk, guest, '/etc/sysconfig/network'), /^HOSTNAME=vm1\.example\.org$/m);
    const ifcfg = read(r.disk, guest, '/etc/sysconfig/network-scripts/ifcfg-snf0');
    assert.match(ifcfg, /^IPADDR=192\.0\.2\.10$/m);
    assert.match(ifcfg, /^HWADDR=aa:00:00:6b:74:80$/im);
    assert.match(read(r.disk, guest, '/etc/systemd/network/10-snf-image-0.link'), /^Name=snf0$/m);
    assert.equal(read(r.disk, guest, '/.autorelabel'), '');
  });

  it('SUSE: /etc/HOSTNAME and a NetworkManager connection', async () => {
    const guest: GuestOptions = {
      osRelease: 'NAME="openSUSE Leap"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\nVERSION_ID="15.5"\n',
      executables: { 'usr/sbin/NetworkManager': '' },
    };
    const r = await deploy(guest, STATIC_NIC);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(read(r.disk, guest, '/etc/HOSTNAME'), 'vm1.example.org\n');
    const connection = read(r.disk, guest, '/etc/NetworkManager/system-connections/snf-image-0.nmconnection');
    assert.match(connection, /192\.0\.2\.10\/24/);
    assert.match(connection, /^mac-address=aa:00:00:6b:74:80$/im);
  });

  it('Arch: /etc/hostname and a systemd-networkd file when networkd is enabled', async () => {
    const guest: GuestOptions = {
      osRelease: 'NAME="Arch Linux"\nID=arch\n',
      links: {
        'etc/systemd/system/multi-user.target.wants/systemd-networkd.service':
          '/usr/lib/systemd/system/systemd-networkd.service',
      },
    };
    const r = await deploy(guest, STATIC_NIC);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(read(r.disk, guest, '/etc/hostname'), 'vm1.example.org\n');
    const network = read(r.disk, guest, '/etc/systemd/network/10-snf-image-0.network');
    assert.match(network, /^MACAddress=aa:00:00:6b:74:80$/m);
    assert.match(network, /^Address=192\.0\.2\.10\/24$/m);
    assert.match(network, /^Gateway=192\.0\.2\.1$/m);
  });

  it('Alpine: /etc/hostname and /etc/network/interfaces', async () => {
    // eudev: NICs named by a udev rule.
    const guest: GuestOptions = {
      osRelease: 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n',
      files: { 'etc/network/interfaces': 'auto lo\niface lo inet loopback\n' },
      executables: { 'sbin/udevd': '' },
    };
    const r = await deploy(guest, STATIC_NIC);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(read(r.disk, guest, '/etc/hostname'), 'vm1.example.org\n');
    const interfaces = read(r.disk, guest, '/etc/network/interfaces');
    assert.match(interfaces, /iface snf0 inet static/);
    assert.match(interfaces, /address 192\.0\.2\.10/);
    assert.match(
      read(r.disk, guest, '/etc/udev/rules.d/70-snf-image-net.rules'),
      /ATTR\{address\}=="aa:00:00:6b:74:80".*NAME="snf0"/,
    );
  });
});
