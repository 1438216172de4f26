/**
 * Real helper VMs (TCG here, KVM where it really works): create on a Ganeti-shaped
 * environment boots the helper built by update-helper and finishes with SUCCESS; a failing
 * task reaches the admin; a hanging helper is terminated then killed; monitor lines arrive
 * in order; QEMU has no network device and runs unprivileged; temp files are gone; secrets
 * are absent from QEMU's command line and the logs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { makeSyntheticGuest, readGuestFile } from '../support/synthetic-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const SECRET = 'Helper-Secret-pw-4471';
const skip = helperSkipReason();
let helperDir = '';

function nodeWithHelper(extra = ''): NodeFixture {
  return makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=600\n${extra}`);
}

/** This test's helper QEMU processes (other test files may run helpers at the same time): those given `disk`. */
function qemuProcesses(disk: string): string[] {
  const r = spawnSync('ps', ['-eo', 'pid,user:20,args', '--no-headers'], { encoding: 'utf8' });
  // The QEMU process itself, not its timeout(1) wrapper.
  return r.stdout
    .split('\n')
    .filter(
      (l) =>
        /^\s*\d+\s+\S+\s+(\S*\/)?qemu-system/.test(l) && /snf-image-helper-/.test(l) && l.includes(`file=${disk},`),
    );
}

/** The private TMPDIR each create of this file runs with, and the helper files left in it. */
function tempDirOf(node: NodeFixture): string {
  const dir = join(node.root, 'tmp');
  mkdirSync(dir, { recursive: true });
  return dir;
}

function helperTempDirs(node: NodeFixture): string[] {
  return readdirSync(tempDirOf(node)).filter((d) => d.startsWith('snf-image-helper-'));
}

async function create(node: NodeFixture, disk: string, image: string, extra: Record<string, string> = {}) {
  return runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: image,
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PASSWD: SECRET,
      DISK_0_PATH: disk,
      INSTANCE_NAME: 'vm1.example.org',
      SNF_IMAGE_CONFIG: node.configFile,
      TMPDIR: tempDirOf(node),
      ...extra,
    },
  });
}

describe('helper VM (real QEMU)', { skip, timeout: 1_800_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
  });

  it('create finishes with SUCCESS from the helper VM and customizes the disk; QEMU unprivileged, no network, no secret on its command line', async () => {
    const node = nodeWithHelper();
    const guest = makeSyntheticGuest(join(node.imageDir, 'guest.img'));
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '128M', disk]);
    // Last state seen of each QEMU process: it starts as root and switches to its own uid from HELPER_UIDS (-runas uid:gid).
    const seen = new Map<string, string>();
    const watcher = setInterval(() => {
      for (const l of qemuProcesses(disk)) seen.set(l.trim().split(/\s+/)[0] ?? '', l.trim().replace(/^\d+\s+/, ''));
    }, 100);
    const r = await create(node, disk, 'guest.img');
    clearInterval(watcher);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Customization status is: SUCCESS/);
    assert.ok(!r.stderr.includes(SECRET));
    assert.ok(seen.size > 0, 'the QEMU process was observed');
    for (const line of seen.values()) {
      const uid = Number(line.split(/\s+/)[0]);
      assert.ok(uid >= 1879048192 && uid <= 1879113727, `QEMU runs under a uid of HELPER_UIDS: ${line}`);
      assert.doesNotMatch(line, / -net | -netdev | -nic |virtio-net/);
      assert.ok(!line.includes(SECRET), 'no secret on the QEMU command line');
    }
    assert.equal(readGuestFile(disk, '/etc/hostname'), 'vm1.example.org\n');
    const shadow = readGuestFile(disk, '/etc/shadow');
    assert.match(shadow, /^root:\$(y|6)\$[^:]+:\d+:0:99999:7:::$/m);
    assert.doesNotMatch(shadow, /\$template\$/);
    const pub = readGuestFile(disk, '/etc/ssh/ssh_host_ed25519_key.pub');
    assert.ok(pub.startsWith('ssh-ed25519 '));
    assert.ok(!pub.includes(guest.hostKeyFingerprint));
    assert.deepEqual(helperTempDirs(node), [], 'floppy and temp files removed');
    assert.deepEqual(qemuProcesses(disk), []);
  });

  it('rename boots the helper to change only the guest hostname', async () => {
    const node = nodeWithHelper();
    makeSyntheticGuest(join(node.imageDir, 'guest.img'));
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '96M', disk]);
    const created = await create(node, disk, 'guest.img');
    assert.equal(created.code, 0, created.stderr);
    const shadowBefore = readGuestFile(disk, '/etc/shadow');
    const r = await runScript('rename', {
      env: {
        ...CREATE_ENV,
        DISK_0_PATH: disk,
        INSTANCE_NAME: 'vm2.example.org',
        OLD_INSTANCE_NAME: 'vm1.example.org',
        OSP_IMG_ID: 'guest.img',
        OSP_IMG_FORMAT: 'diskdump',
        SNF_IMAGE_CONFIG: node.configFile,
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /guest hostname changed guest=vm2\.example\.org/);
    assert.doesNotMatch(r.stderr, /task (FixPartitionTable|ChangePassword|DeleteSSHKeys) started/);
    assert.equal(readGuestFile(disk, '/etc/hostname'), 'vm2.example.org\n');
    assert.equal(readGuestFile(disk, '/etc/shadow'), shadowBefore, 'nothing but the hostname changed');
  });

  it('relays the monitor lines in task order', async () => {
    const out = join(tmpdir(), `snf-monitor-${process.pid}.jsonl`);
    const monitor = join(tmpdir(), `snf-monitor-${process.pid}.sh`);
    writeFileSync(monitor, `#!/bin/sh\ncat > ${out}\n`);
    chmodSync(monitor, 0o755);
    const node = nodeWithHelper(`PROGRESS_MONITOR=${monitor}\n`);
    makeSyntheticGuest(join(node.imageDir, 'guest.img'));
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '96M', disk]);
    const r = await create(node, disk, 'guest.img', { OSP_IMG_PROPERTIES: '{"EXCLUDE_TASK_DeleteSSHKeys": "yes"}' });
    assert.equal(r.code, 0, r.stderr);
    const messages = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; subtype?: string; task?: string; messages?: string[] });
    const tasks = messages
      .filter((m) => m.type === 'image-helper' && (m.subtype === 'task-start' || m.subtype === 'task-end'))
      .map((m) => `${m.subtype}:${m.task}`);
    assert.deepEqual(tasks.slice(0, 6), [
      'task-start:FixPartitionTable',
      'task-end:FixPartitionTable',
      'task-start:FilesystemResizeUnmounted',
      'task-end:FilesystemResizeUnmounted',
      'task-start:MountImage',
      'task-end:MountImage',
    ]);
    assert.equal(tasks.at(-1), 'task-end:UmountImage');
    assert.ok(!tasks.some((t) => t.endsWith(':DeleteSSHKeys')), 'excluded task did not run');
    assert.ok(messages.some((m) => m.subtype === 'warning' && m.messages?.[0]?.includes('EXCLUDE_TASK_DeleteSSHKeys')));
    assert.deepEqual(messages.at(-1)?.messages, ['Image customization finished successfully.']);
  });

  it('a failing task reaches the admin as one line and create exits non-zero', async () => {
    const node = nodeWithHelper();
    makeSyntheticGuest(join(node.imageDir, 'guest.img'), {
      fstab: (u) => `UUID=${u} / ext4 defaults 0 1\nUUID=00000000-dead-beef-0000-000000000000 /var ext4 defaults 0 2\n`,
    });
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '96M', disk]);
    const r = await create(node, disk, 'guest.img');
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /ERROR fstab names UUID=00000000-dead-beef-0000-000000000000, but no partition of the image has it$/m,
    );
    assert.deepEqual(qemuProcesses(disk), []);
  });

  it('a helper that does not finish in time is terminated, then killed; no QEMU is left', async () => {
    const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=3\nHELPER_HARD_TIMEOUT=2\n`);
    makeSyntheticGuest(join(node.imageDir, 'guest.img'));
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '96M', disk]);
    const started = Date.now();
    const r = await create(node, disk, 'guest.img');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /helper VM did not finish within HELPER_SOFT_TIMEOUT \(3 s\)/);
    assert.match(r.stderr, /ERROR Image customization failed\. Did not finish on time\./);
    assert.ok(Date.now() - started < 60_000);
    assert.deepEqual(qemuProcesses(disk), []);
    assert.ok(existsSync(disk));
  });
});
