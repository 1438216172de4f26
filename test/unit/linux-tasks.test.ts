/**
 * Pure logic of the SWAP property, the swap partition plan, the in-image override lookup,
 * the CUSTOM_TASK environment and the cloud-init NoCloud seed.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { renderSeed, SEED_DIR, seedNetworkConfig } from '../../helper/cloud-init/seed.ts';
import { GuestFs } from '../../helper/guest-files.ts';
import type { PartitionTable } from '../../helper/disks.ts';
import { findOverride } from '../../helper/programs/overrides.ts';
import { decide } from '../../helper/runner.ts';
import { parseSwapProperty, planSwapPartition } from '../../helper/swap-plan.ts';
import { TASKS } from '../../helper/task-table.ts';
import { customTaskEnv, decodeCustomTask } from '../../helper/tasks/custom-task.ts';
import { isActivatedVolume } from '../../helper/tasks/mount.ts';
import { fstabWithSwap } from '../../helper/tasks/swap.ts';
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';

const MiB = 2048;

function table(
  type: 'dos' | 'gpt',
  parts: Array<[number, number, number, string]>,
  sectors = 100 * MiB,
): PartitionTable {
  return {
    device: '/dev/vdb',
    type,
    sectorSize: 512,
    sectors,
    partitions: parts.map(([number, start, size, t]) => ({ number, node: `/dev/vdb${number}`, start, size, type: t })),
  };
}

describe('SWAP property', () => {
  it('parses the partition and the disk-letter forms and rejects the rest naming the rule', () => {
    assert.equal(parseSwapProperty(undefined), undefined);
    assert.deepEqual(parseSwapProperty('2:512'), { kind: 'partition', number: 2, mib: 512 });
    assert.deepEqual(parseSwapProperty('c'), { kind: 'disk', letter: 'c', diskIndex: 2 });
    assert.throws(
      () => parseSwapProperty('a'),
      /^Error: SWAP: must be <partition number>:<size in MB> or a disk letter b-z$/,
    );
    assert.throws(() => parseSwapProperty('2:0'), /SWAP: must be/);
    assert.throws(() => parseSwapProperty('129:10'), /SWAP: partition number 129 is above 128/);
  });

  it('plans a primary swap partition at the end of an MBR disk, 1 MiB aligned', () => {
    const ops = planSwapPartition(table('dos', [[1, MiB, 10 * MiB, '83']]), { number: 2, mib: 32 });
    assert.deepEqual(ops, [
      { op: 'resize', number: 1, size: 67 * MiB },
      { op: 'create', number: 2, start: 68 * MiB, size: 32 * MiB, kind: 'swap' },
    ]);
  });

  it('plans a logical swap partition in a new extended partition, or in the existing one', () => {
    assert.deepEqual(planSwapPartition(table('dos', [[1, MiB, 10 * MiB, '83']]), { number: 5, mib: 32 }), [
      { op: 'resize', number: 1, size: 66 * MiB },
      { op: 'create', number: 2, start: 67 * MiB, size: 33 * MiB, kind: 'extended' },
      { op: 'create', number: 5, start: 68 * MiB, size: 32 * MiB, kind: 'swap' },
    ]);
    const logical = table('dos', [
      [1, MiB, 20 * MiB, '5'],
      [5, 2 * MiB, 10 * MiB, '83'],
    ]);
    assert.deepEqual(planSwapPartition(logical, { number: 6, mib: 32 }), [
      { op: 'resize', number: 1, size: 99 * MiB },
      { op: 'resize', number: 5, size: 65 * MiB },
      { op: 'create', number: 6, start: 68 * MiB, size: 32 * MiB, kind: 'swap' },
    ]);
    assert.throws(
      () => planSwapPartition(logical, { number: 7, mib: 32 }),
      /next logical partition of this image is 6, not 7/,
    );
    assert.throws(() => planSwapPartition(logical, { number: 2, mib: 32 }), /cannot follow the extended partition/);
  });

  it('keeps GPT backup sectors free and refuses a disk too small or a taken number', () => {
    const gpt = table('gpt', [[1, MiB, 10 * MiB, '0fc63daf-8483-4772-8e79-3d69d8477de4']]);
    const ops = planSwapPartition(gpt, { number: 3, mib: 32 });
    const swap = ops[1];
    assert.ok(swap && swap.op === 'create');
    assert.ok(swap.start + swap.size - 1 <= 100 * MiB - 34);
    assert.equal(swap.start % MiB, 0);
    assert.throws(() => planSwapPartition(gpt, { number: 1, mib: 32 }), /partition 1 already exists/);
    assert.throws(() => planSwapPartition(gpt, { number: 2, mib: 95 }), /disk is too small for a 95 MB swap partition/);
  });

  it('adds one fstab line by UUID', () => {
    const uuid = '0f157e92-5b22-45c5-9eae-86154c8844cb';
    const once = fstabWithSwap('UUID=x / ext4 defaults 0 1', uuid);
    assert.equal(once, `UUID=x / ext4 defaults 0 1\nUUID=${uuid}\tnone\tswap\tsw\t0\t0\n`);
    assert.equal(fstabWithSwap(once, uuid), once);
  });
});

describe('task table rows of this issue', () => {
  const config = { secrets: {}, personality: [] } as unknown as ConfigDocument;
  const task = (name: string) => TASKS.find((t) => t.name === name)!;
  const linux = { OSFAMILY: 'linux' };

  it('AddSwap, RunCustomTask and InitializeDatasource run only with their inputs', () => {
    assert.deepEqual(decide(task('AddSwap'), { properties: linux, config }), {
      run: false,
      why: 'no SWAP property',
      warn: false,
    });
    assert.equal(decide(task('AddSwap'), { properties: { ...linux, SWAP: '2:64' }, config }).run, true);
    assert.equal(decide(task('RunCustomTask'), { properties: linux, config }).run, false);
    assert.equal(
      decide(task('RunCustomTask'), { properties: { ...linux, CUSTOM_TASK: 'ZWNobwo=' }, config }).run,
      true,
    );
    assert.equal(decide(task('InitializeDatasource'), { properties: linux, config }).run, false);
    assert.equal(
      decide(task('InitializeDatasource'), { properties: { ...linux, CLOUD_INIT: 'yes' }, config }).run,
      true,
    );
  });

  it('cloud-init mode skips the tasks the seed replaces; hostname files and the network are still written', () => {
    const ci = { ...linux, CLOUD_INIT: 'yes' };
    for (const name of ['FixPartitionTable', 'DeleteSSHKeys'])
      assert.equal(decide(task(name), { properties: ci, config }).run, false, name);
    assert.equal(
      decide(task('ChangePassword'), { properties: ci, config: { ...config, secrets: { password: 'x' } } }).run,
      false,
    );
    // As upstream's 50ConfigureNetwork; AssignHostname for /etc/hostname and /etc/hosts as in files mode.
    for (const name of ['ChangeMachineId', 'ConfigureNetwork', 'AssignHostname'])
      assert.equal(decide(task(name), { properties: ci, config }).run, true, name);
  });
});

describe('in-image overrides', () => {
  it('finds an executable overwrite_task_<Task> case-insensitively, never a directory, a plain file or a link out', () => {
    const root = mkdtempSync(join(tmpdir(), 'snf-override-'));
    const dir = join(root, 'root/snf-image/helper');
    mkdirSync(dir, { recursive: true });
    assert.equal(findOverride(root, 'AssignHostname'), undefined);
    writeFileSync(join(dir, 'OVERWRITE_TASK_assignhostname'), '#!/bin/sh\n');
    assert.equal(findOverride(root, 'AssignHostname'), undefined, 'not executable');
    chmodSync(join(dir, 'OVERWRITE_TASK_assignhostname'), 0o755);
    assert.equal(findOverride(root, 'AssignHostname'), '/root/snf-image/helper/OVERWRITE_TASK_assignhostname');
    mkdirSync(join(dir, 'overwrite_task_ChangeMachineId'));
    assert.equal(findOverride(root, 'ChangeMachineId'), undefined);
    symlinkSync('/bin/sh', join(dir, 'overwrite_task_DeleteSSHKeys'));
    assert.equal(
      findOverride(root, 'DeleteSSHKeys'),
      undefined,
      'the link resolves inside the guest, where /bin/sh does not exist',
    );
  });
});

describe('guest files of hostile images', () => {
  it('a link to a missing file is a one-line error naming the guest paths, not the helper mount', () => {
    const root = mkdtempSync(join(tmpdir(), 'snf-hostile-'));
    mkdirSync(join(root, 'etc'));
    symlinkSync('/../../../../etc/host-shadow', join(root, 'etc/shadow'));
    assert.throws(
      () => new GuestFs(root).read('/etc/shadow'),
      /^Error: the image's \/etc\/shadow \(a link to \/etc\/host-shadow inside the image\) does not exist$/,
    );
    assert.throws(() => new GuestFs(root).read('/etc/passwd'), /^Error: the image's \/etc\/passwd does not exist$/);
    assert.throws(() => new GuestFs(root).read('/etc'), /^Error: the image's \/etc is a directory, not a file$/);
  });
});

describe('CUSTOM_TASK', () => {
  it('decodes base64 and keeps the earlier unprefixed variables without the program itself', () => {
    assert.equal(decodeCustomTask('IyEvYmluL3NoCmVjaG8gaGkK').toString(), '#!/bin/sh\necho hi\n');
    assert.throws(() => decodeCustomTask('not base64!'), /^Error: CUSTOM_TASK: must be base64$/);
    const env = customTaskEnv({
      target: '/run/snf-target',
      disks: ['/dev/vdb', '/dev/vdc'],
      properties: { OSFAMILY: 'linux', CUSTOM_TASK: 'x' },
      config: {
        hostname: 'vm1',
        nics: [],
        personality: [],
        network: { dhcpTags: [], statefulDhcpv6Tags: [], statelessDhcpv6Tags: [], defaultNicConfig: '' },
        cloudInitDebug: false,
      } as unknown as ConfigDocument,
      resizedPartition: '/dev/vdb1',
    });
    const unprefixed = Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('SNF_IMAGE_')));
    assert.deepEqual(unprefixed, {
      TARGET: '/run/snf-target',
      HOSTNAME: 'vm1',
      DEV_COUNT: '2',
      DEV: '/dev/vdb /dev/vdc',
      DEV_0: '/dev/vdb',
      DEV_1: '/dev/vdc',
      RESIZE_PART: '/dev/vdb1',
      PROPERTY_OSFAMILY: 'linux',
    });
    assert.ok(!Object.keys(env).some((name) => name.endsWith('CUSTOM_TASK')));
  });
});

describe('cloud-init NoCloud seed', () => {
  const nic = {
    index: 0,
    mac: 'aa:00:00:00:00:01',
    name: 'snf0',
    ipv4: {
      method: 'static' as const,
      address: '192.0.2.10',
      prefix: 24,
      netmask: '255.255.255.0',
      gateway: '192.0.2.1',
    },
    ipv6: 'slaac' as const,
    source: 'network' as const,
  };
  const seed = renderSeed({
    instanceId: 'iid-1',
    hostname: 'vm1.example.org',
    users: ['root'],
    passwordHash: '$6$salt$hash',
    authKeys: 'ssh-ed25519 AAAA k1\n# comment\n\n',
    userData: Buffer.from('#cloud-config\nruncmd: [ [touch, /x] ]\n'),
    swapMiB: 64,
    debug: false,
  });
  const file = (name: string) => seed.find((f) => f.path === `${SEED_DIR}/${name}`);

  it('meta-data has the instance id, the hostname and the public keys', () => {
    const meta = JSON.parse(String(file('meta-data')?.content)) as Record<string, unknown>;
    assert.deepEqual(meta, {
      'instance-id': 'iid-1',
      'local-hostname': 'vm1.example.org',
      'public-keys': ['ssh-ed25519 AAAA k1'],
    });
  });

  it('user-data is cloud_userdata as given; vendor-data holds the password hash, key reset and swap file', () => {
    assert.equal(String(file('user-data')?.content), '#cloud-config\nruncmd: [ [touch, /x] ]\n');
    const vendorText = String(file('vendor-data')?.content);
    assert.ok(vendorText.startsWith('#cloud-config\n'));
    const vendor = JSON.parse(vendorText.slice('#cloud-config\n'.length)) as Record<string, unknown>;
    assert.deepEqual(vendor.chpasswd, {
      expire: false,
      users: [{ name: 'root', password: '$6$salt$hash', type: 'hash' }],
    });
    assert.equal(vendor.ssh_deletekeys, true);
    assert.equal(vendor.disable_root, false);
    assert.deepEqual(vendor.swap, { filename: '/swap.img', size: 64 * 1048576, maxsize: 64 * 1048576 });
    assert.equal(vendor.preserve_hostname, false);
    // The hostname is the FQDN, as files mode sets it (cloud-init would take the short name),
    // in the system configuration cloud-init reads in its local stage.
    assert.match(
      String(seed.find((f) => f.path === '/etc/cloud/cloud.cfg.d/98_snf-image-datasource.cfg')?.content),
      /^prefer_fqdn_over_hostname: true$/m,
    );
  });

  it('a per-once script empties user-data at first boot (upstream), not executable with CLOUD_INIT_DEBUG', () => {
    const script = seed.find((f) => f.path === '/var/lib/cloud/scripts/per-once/clear_user_data.sh');
    assert.equal(script?.mode, 0o755);
    assert.match(
      String(script?.content),
      /^#!\/bin\/sh\n[\s\S]*^cat \/dev\/null > \/var\/lib\/cloud\/seed\/nocloud-net\/user-data$/m,
    );
    const debug = renderSeed({ instanceId: 'i', hostname: 'h', users: ['root'], debug: true });
    assert.equal(debug.find((f) => f.path.endsWith('clear_user_data.sh'))?.mode, 0o644);
  });

  it('network-config (when ConfigureNetwork leaves the network to cloud-init) is version 2 from the network model, matched by MAC', () => {
    const net = JSON.parse(String(seedNetworkConfig([nic]).content)) as {
      version: number;
      ethernets: Record<string, Record<string, unknown>>;
    };
    assert.equal(net.version, 2);
    assert.deepEqual(net.ethernets.snf0, {
      match: { macaddress: 'aa:00:00:00:00:01' },
      'set-name': 'snf0',
      dhcp4: false,
      addresses: ['192.0.2.10/24'],
      routes: [{ to: '0.0.0.0/0', via: '192.0.2.1' }],
      dhcp6: false,
      'accept-ra': true,
    });
  });

  it('seed files are private; no network-config in the seed itself; without a password those parts are absent', () => {
    for (const f of seed.filter((s) => s.path.startsWith(SEED_DIR))) assert.equal(f.mode, 0o600, f.path);
    assert.equal(seedNetworkConfig([nic]).mode, 0o600);
    const bare = renderSeed({ instanceId: 'i', hostname: 'h', users: ['user'], debug: false });
    assert.equal(
      bare.some((f) => f.path.endsWith('network-config')),
      false,
    );
    const vendor = String(bare.find((f) => f.path.endsWith('vendor-data'))?.content);
    assert.doesNotMatch(vendor, /chpasswd|disable_root|swap/);
    assert.equal(String(bare.find((f) => f.path.endsWith('user-data'))?.content), '#cloud-config\n{}\n');
  });
});

describe('README task table', () => {
  it('lists every task of helper/task-table.ts with its order, in order', () => {
    const readme = readFileSync('README.md', 'utf8');
    const rows = [...readme.matchAll(/^\| (\d+) \| (\w+)/gm)].map((m) => `${m[1]} ${m[2]}`);
    const table = [...TASKS].sort((a, b) => a.order - b.order).map((t) => `${t.order} ${t.name}`);
    assert.deepEqual(
      rows.filter((r) => table.includes(r) || /^\d+ [A-Z]\w+$/.test(r)),
      table,
    );
  });
});

describe('LVM fstab sources', () => {
  it('accepts /dev/mapper and /dev/<vg>/<lv> names of activated volume groups only', () => {
    assert.equal(isActivatedVolume('/dev/mapper/snf--vg-root', ['snf-vg']), true);
    assert.equal(isActivatedVolume('/dev/snf-vg/root', ['snf-vg']), true);
    assert.equal(isActivatedVolume('/dev/mapper/other-root', ['snf-vg']), false);
    assert.equal(isActivatedVolume('/dev/vdb1', ['snf-vg']), false);
    assert.equal(isActivatedVolume('/dev/snf-vg/../vdb', ['snf-vg']), false);
    assert.equal(isActivatedVolume('/dev/snf-vg/..', ['snf-vg']), false);
    assert.equal(isActivatedVolume('/dev/mapper/snf--vg-root', []), false);
  });
});
