/**
 * The Linux tasks of issue 5 in real helper VMs on synthetic guests: the SWAP partition
 * (primary, logical in a new extended partition, GPT) and AddSwap's fstab entry; a swap
 * disk; RunCustomTask; in-image overrides (pre-exec 0 replaces the task, 101 runs it then
 * post-exec, anything else fails; nothing without ALLOW_MOUNTED_TASK_OVERWRITING); the
 * cloud-init NoCloud seed. Plus the chrooted guest-program runner's time limit (root only).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runInGuest } from '../../helper/programs/guest-program.ts';
import { diskPartitions as partitions } from '../support/partition-table.ts';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { makeSyntheticGuest, readGuestFile, type GuestOptions } from '../support/synthetic-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const SECRET = 'Linux-Tasks-pw-9146';
const USERDATA_SECRET = 'userdata-token-5521';
const skip = helperSkipReason();
const BUSYBOX = '/bin/busybox';
const busyboxMissing = spawnSync(BUSYBOX, ['true']).status === 0 ? false : `${BUSYBOX} (static) is not installed`;
let helperDir = '';
const nodes: NodeFixture[] = [];

function blkidAt(disk: string, startSector: number): Record<string, string> {
  const out = execFileSync('blkid', ['-p', '-O', String(startSector * 512), '-o', 'export', disk]).toString();
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string]),
  );
}

async function deploy(options: {
  guest?: GuestOptions;
  diskMiB?: number;
  properties?: Record<string, string>;
  env?: Record<string, string>;
  extraDisks?: number;
}) {
  const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\n`);
  nodes.push(node);
  makeSyntheticGuest(join(node.imageDir, 'guest.img'), options.guest);
  const disk = join(node.root, 'disk0');
  execFileSync('truncate', ['-s', `${options.diskMiB ?? 128}M`, disk]);
  const extra: Record<string, string> = {};
  for (let i = 1; i <= (options.extraDisks ?? 0); i++) {
    const path = join(node.root, `disk${i}`);
    execFileSync('truncate', ['-s', '32M', path]);
    Object.assign(extra, {
      [`DISK_${i}_PATH`]: path,
      [`DISK_${i}_ACCESS`]: 'rw',
      [`DISK_${i}_FRONTEND_TYPE`]: 'paravirtual',
      [`DISK_${i}_UUID`]: `00000000-0000-0000-0000-00000000000${i}`,
    });
  }
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      ...extra,
      ...(options.extraDisks ? { DISK_COUNT: String(1 + options.extraDisks) } : {}),
      OSP_IMG_ID: 'guest.img',
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PASSWD: SECRET,
      OSP_IMG_PROPERTIES: JSON.stringify(options.properties ?? {}),
      DISK_0_PATH: disk,
      INSTANCE_NAME: 'vm1.example.org',
      SNF_IMAGE_CONFIG: node.configFile,
      ...options.env,
    },
  });
  return { ...r, disk, node };
}

const sh = (script: string) => `#!/bin/busybox sh\n${script}`;

describe('Linux tasks in the helper VM (real QEMU)', { skip, timeout: 3_600_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
  });
  after(() => {
    for (const node of nodes) rmSync(node.root, { recursive: true, force: true });
  });

  it('SWAP=2:16 grows partition 1 up to a 16 MiB primary swap partition at the end; AddSwap puts its UUID in fstab', async () => {
    const r = await deploy({ properties: { SWAP: '2:16' } });
    assert.equal(r.code, 0, r.stderr);
    const [root, swap] = partitions(r.disk);
    assert.ok(root && swap, 'two partitions');
    assert.equal(swap.type, '82');
    assert.equal(swap.size, 16 * 2048);
    assert.equal(swap.start + swap.size, 128 * 2048, 'swap ends at the disk end');
    assert.equal(root.start + root.size, swap.start, 'root grown up to the swap partition');
    const probe = blkidAt(r.disk, swap.start);
    assert.equal(probe.TYPE, 'swap');
    assert.match(
      readGuestFile(r.disk, '/etc/fstab'),
      new RegExp(`^UUID=${probe.UUID}\\tnone\\tswap\\tsw\\t0\\t0$`, 'm'),
    );
    assert.match(r.stderr, /task AddSwap finished/);
  });

  it('SWAP=5:16 puts a logical swap partition in a new extended partition; GPT SWAP=3:16 a GPT swap partition', async () => {
    const logical = await deploy({ properties: { SWAP: '5:16' } });
    assert.equal(logical.code, 0, logical.stderr);
    const parts = partitions(logical.disk);
    assert.deepEqual(
      parts.map((p) => [p.node.replace(/.*disk0p?/, ''), p.type]),
      [
        ['1', '83'],
        ['2', '5'],
        ['5', '82'],
      ],
    );
    assert.equal(blkidAt(logical.disk, parts[2]!.start).TYPE, 'swap');

    const gpt = await deploy({ guest: { label: 'gpt' }, properties: { SWAP: '3:16' } });
    assert.equal(gpt.code, 0, gpt.stderr);
    const g = partitions(gpt.disk);
    const swap = g.find((p) => p.node.endsWith('3'));
    assert.equal(swap?.type, '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F');
    assert.equal(swap?.size, 16 * 2048);
    assert.match(
      readGuestFile(gpt.disk, '/etc/fstab'),
      new RegExp(`UUID=${blkidAt(gpt.disk, swap!.start).UUID}\\tnone\\tswap`),
    );
  });

  it('SWAP=b makes the whole second disk swap space; a SWAP the disk cannot hold fails naming SWAP', async () => {
    const r = await deploy({ properties: { SWAP: 'b' }, extraDisks: 1 });
    assert.equal(r.code, 0, r.stderr);
    const probe = blkidAt(join(r.node.root, 'disk1'), 0);
    assert.equal(probe.TYPE, 'swap');
    assert.match(readGuestFile(r.disk, '/etc/fstab'), new RegExp(`UUID=${probe.UUID}\\tnone\\tswap`));

    const tooBig = await deploy({ properties: { SWAP: '2:100' } });
    assert.equal(tooBig.code, 1);
    assert.match(tooBig.stderr, /ERROR SWAP: the disk is too small for a 100 MB swap partition after partition 1$/m);
  });

  it('RunCustomTask runs CUSTOM_TASK with the guest at TARGET and the task variables; a failing one fails create in one line', async () => {
    const script =
      '#!/bin/sh\nset -e\necho "$HOSTNAME $DEV_COUNT $PROPERTY_OSFAMILY ${PASSWD:-no-secret}" > "$TARGET/etc/custom-task-ran"\necho done-custom\n';
    const r = await deploy({
      properties: { OSFAMILY: 'linux', ROOT_PARTITION: '1', CUSTOM_TASK: Buffer.from(script).toString('base64') },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readGuestFile(r.disk, '/etc/custom-task-ran'), 'vm1.example.org 1 linux no-secret\n');
    assert.match(r.stderr, /CUSTOM_TASK finished: done-custom/);

    const failing = await deploy({
      properties: { CUSTOM_TASK: Buffer.from('#!/bin/sh\necho broken >&2\nexit 3\n').toString('base64') },
    });
    assert.equal(failing.code, 1);
    assert.match(failing.stderr, /ERROR CUSTOM_TASK failed \(exit 3\): broken$/m);
  });

  it('in-image overrides: pre-exec 0 replaces the task, 101 runs it between pre-exec and post-exec, other codes fail; ignored unless allowed', {
    skip: busyboxMissing,
  }, async () => {
    const guest: GuestOptions = {
      executables: {
        'bin/busybox': readFileSync(BUSYBOX),
        // Replaces AssignHostname: writes its own file, the hostname stays.
        'root/snf-image/helper/overwrite_task_AssignHostname': sh(
          'echo "$1 $SNF_IMAGE_TASK" >> /etc/override-log\nexit 0\n',
        ),
        // Wraps ChangeMachineId: 101, then post-exec sees the new id.
        'root/snf-image/helper/OVERWRITE_TASK_changemachineid': sh(
          'if [ "$1" = pre-exec ]; then echo pre >> /etc/override-log; exit 101; fi\necho "post $(/bin/busybox cat /etc/machine-id)" >> /etc/override-log\n',
        ),
      },
    };
    const allowed = await deploy({ guest, properties: { ALLOW_MOUNTED_TASK_OVERWRITING: 'yes' } });
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(readGuestFile(allowed.disk, '/etc/hostname'), 'template-host\n', 'AssignHostname replaced');
    const log = readGuestFile(allowed.disk, '/etc/override-log').split('\n');
    const machineId = readGuestFile(allowed.disk, '/etc/machine-id').trim();
    assert.notEqual(machineId, 'f'.repeat(32), 'the built-in ChangeMachineId ran');
    assert.deepEqual(log.filter(Boolean).sort(), ['pre', `post ${machineId}`, 'pre-exec AssignHostname'].sort());
    assert.match(
      allowed.stderr,
      /Task AssignHostname is overridden by the image's \/root\/snf-image\/helper\/overwrite_task_AssignHostname/,
    );

    const notAllowed = await deploy({ guest });
    assert.equal(notAllowed.code, 0, notAllowed.stderr);
    assert.equal(readGuestFile(notAllowed.disk, '/etc/hostname'), 'vm1.example.org\n');

    const failing = await deploy({
      guest: {
        executables: {
          'bin/busybox': readFileSync(BUSYBOX),
          'root/snf-image/helper/overwrite_task_DeleteSSHKeys': sh('exit 7\n'),
        },
      },
      properties: { ALLOW_MOUNTED_TASK_OVERWRITING: 'yes' },
    });
    assert.equal(failing.code, 1);
    assert.match(
      failing.stderr,
      /ERROR Task DeleteSSHKeys: the image's override \/root\/snf-image\/helper\/overwrite_task_DeleteSSHKeys pre-exec failed \(exit 7\)$/m,
    );
  });

  it('CLOUD_INIT writes the NoCloud seed instead of editing files; secrets stay out of the logs', async () => {
    const userData = `#cloud-config\nwrite_files: [{path: /etc/token, content: ${USERDATA_SECRET}}]\n`;
    const key = execFileSync('sh', [
      '-c',
      'd=$(mktemp -d) && ssh-keygen -q -t ed25519 -N "" -C seed-key -f $d/k && cat $d/k.pub && rm -r $d',
    ])
      .toString()
      .trim();
    const r = await deploy({
      guest: { files: { 'etc/cloud/cloud.cfg': 'datasource_list: [ Ec2 ]\n' } },
      properties: { CLOUD_INIT: 'yes', SWAP: '2:16' },
      env: { OSP_CLOUD_USERDATA: Buffer.from(userData).toString('base64'), OSP_AUTH_KEYS: `${key}\n` },
    });
    assert.equal(r.code, 0, r.stderr);
    const seed = (name: string) => readGuestFile(r.disk, `/var/lib/cloud/seed/nocloud-net/${name}`);
    const meta = JSON.parse(seed('meta-data')) as Record<string, unknown>;
    assert.equal(meta['local-hostname'], 'vm1.example.org');
    assert.deepEqual(meta['public-keys'], [key]);
    assert.equal(seed('user-data'), userData);
    const vendor = JSON.parse(seed('vendor-data').replace(/^#cloud-config\n/, '')) as {
      chpasswd: { users: Array<{ name: string; password: string; type: string }> };
      swap: { size: number };
    };
    assert.match(vendor.chpasswd.users[0]?.password ?? '', /^\$(y|6)\$/);
    assert.equal(vendor.swap.size, 16 * 1048576);
    const net = JSON.parse(seed('network-config')) as {
      version: number;
      ethernets: Record<string, { match: { macaddress: string } }>;
    };
    assert.equal(net.version, 2);
    assert.equal(net.ethernets.snf0?.match.macaddress, CREATE_ENV.NIC_0_MAC);
    assert.match(
      readGuestFile(r.disk, '/etc/cloud/cloud.cfg.d/98_snf-image-datasource.cfg'),
      /datasource_list: \[ NoCloud, None \]/,
    );
    // AssignHostname runs in cloud-init mode too: /etc/hostname and /etc/hosts as in files mode.
    assert.equal(readGuestFile(r.disk, '/etc/hostname'), 'vm1.example.org\n');
    assert.match(readGuestFile(r.disk, '/etc/hosts'), /^127\.0\.1\.1\tvm1\.example\.org vm1$/m);
    // The synthetic guest has no network system ConfigureNetwork knows: network-config is cloud-init's.
    assert.match(r.stderr, /letting cloud-init do it \(\/var\/lib\/cloud\/seed\/nocloud-net\/network-config\)/);
    assert.match(
      readGuestFile(r.disk, '/var/lib/cloud/scripts/per-once/clear_user_data.sh'),
      /^cat \/dev\/null > \/var\/lib\/cloud\/seed\/nocloud-net\/user-data$/m,
    );
    assert.match(readGuestFile(r.disk, '/etc/shadow'), /^root:\$6\$template\$/m, 'shadow untouched');
    assert.equal(partitions(r.disk).length, 1, 'FixPartitionTable skipped: no swap partition');
    for (const secret of [SECRET, USERDATA_SECRET, vendor.chpasswd.users[0]?.password ?? 'none'])
      assert.ok(!r.stderr.includes(secret), 'no secret in the log');
  });
});

describe('programs of the image run chrooted with a time limit', {
  skip: busyboxMissing || (process.getuid?.() !== 0 ? 'needs root (mount, mknod, chroot)' : false),
}, () => {
  it('a program that does not finish is killed after its limit, with a one-line error; /dev holds only the harmless devices', async () => {
    const root = mkdtempSync(join(tmpdir(), 'snf-chroot-'));
    try {
      mkdirSync(join(root, 'bin'));
      writeFileSync(join(root, 'bin/busybox'), readFileSync(BUSYBOX), { mode: 0o755 });
      writeFileSync(join(root, 'bin/hang'), sh('/bin/busybox sleep 60\n'), { mode: 0o755 });
      writeFileSync(join(root, 'bin/list-dev'), sh('/bin/busybox ls /dev\n'), { mode: 0o755 });
      const listed = await runInGuest(root, '/bin/list-dev', []);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(listed.stdout.trim().split(/\s+/).sort(), ['full', 'null', 'random', 'urandom', 'zero']);
      await assert.rejects(
        runInGuest(root, '/bin/hang', ['pre-exec'], { timeoutSeconds: 2 }),
        /^Error: the image's \/bin\/hang pre-exec did not finish within 2 s and was killed$/,
      );
      const left = spawnSync('pgrep', ['-f', '^/bin/busybox sleep 60$']).stdout.toString().trim();
      assert.equal(left, '', "the program's children are killed too");
      assert.equal(spawnSync('findmnt', ['-n', join(root, 'dev')]).status, 1, 'the private /dev is unmounted');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
