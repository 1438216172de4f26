/**
 * Issue 17 item 2 in a real helper VM (root, QEMU): an image and scripts made for upstream
 * snf-image 0.23 deploy as upstream deploys them.
 *
 * - Root detection needs only /etc/fstab (upstream's check_if_root, common.sh.in): a guest
 *   without os-release and without OSFAMILY / ROOT_PARTITION deploys.
 * - MountImage mounts every local filesystem of the fstab (upstream's mount_all): a
 *   personality file under /srv lands in the filesystem the guest mounts there.
 * - CUSTOM_TASK written for upstream (`echo x > "$SNF_IMAGE_TARGET/root/x"`) works, with
 *   upstream's task variables (docs/advanced.rst) and no secret; an in-image override sees
 *   SNF_IMAGE_TARGET too.
 * - Item 5: the password is hashed with yescrypt where the guest's libcrypt supports it.
 * - Boolean properties as upstream's check_yes_no: `set` means yes, an unknown value yes
 *   with upstream's warning.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { guestPasswordMatches } from '../support/offline-guest.ts';
import { makeSyntheticGuest, readGuestFile } from '../support/synthetic-guest.ts';

const SECRET = 'Upstream-Compat-pw-5307';
const BUSYBOX = '/bin/busybox';
const busyboxMissing = spawnSync(BUSYBOX, ['true']).status === 0 ? false : `${BUSYBOX} (static) is not installed`;
const skip = helperSkipReason() || busyboxMissing;
/** The guest's /srv filesystem: partition 2, after the 48 MiB root at sector 2048. */
const SRV_START = 2048 + 48 * 2048;
const SRV_MIB = 16;
const b64 = (text: string) => Buffer.from(text).toString('base64');

/** A Debian 11 style guest without os-release, /srv on its own ext4 filesystem (partition 2). */
function makeGuest(path: string, executables: Record<string, string | Buffer>): void {
  const srvUuid = execFileSync('cat', ['/proc/sys/kernel/random/uuid']).toString().trim();
  makeSyntheticGuest(path, {
    osRelease: null,
    diskMiB: 48 + 1 + SRV_MIB + 1,
    fstab: (u) => `UUID=${u} / ext4 errors=remount-ro 0 1\nUUID=${srvUuid} /srv ext4 defaults 0 2\n`,
    files: {
      'etc/debian_version': '11.9\n',
      'srv/README': 'mount point\n',
      // What the helper looks for to hash with yescrypt: a libcrypt (libxcrypt) that knows it.
      'lib/x86_64-linux-gnu/libcrypt.so.1': '\u007fELF libxcrypt: yescrypt gost-yescrypt scrypt sha512crypt\n',
    },
    executables,
  });
  execFileSync('sfdisk', ['-q', '--append', path], { input: `start=${SRV_START}, size=${SRV_MIB * 2048}, type=83\n` });
  const work = mkdtempSync(join(tmpdir(), 'snf-srv-'));
  try {
    mkdirSync(join(work, 'tree/data'), { recursive: true });
    writeFileSync(join(work, 'tree/on-srv'), 'the /srv filesystem\n');
    const fs = join(work, 'srv.fs');
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-U', srvUuid, '-d', join(work, 'tree'), fs, `${SRV_MIB}M`]);
    execFileSync('dd', [
      `if=${fs}`,
      `of=${path}`,
      'bs=1M',
      `seek=${SRV_START * 512}`,
      'oflag=seek_bytes',
      'conv=notrunc',
      'status=none',
    ]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Whether an ext4 filesystem of the disk (at `startSector`) has `path` (debugfs stat). */
function guestFileExists(disk: string, path: string, startSector = 2048): boolean {
  const part = `${disk}.stat`;
  execFileSync('dd', [`if=${disk}`, `of=${part}`, 'bs=512', `skip=${startSector}`, 'status=none']);
  try {
    const r = spawnSync('debugfs', ['-R', `stat ${path}`, part], { encoding: 'utf8' });
    assert.match(r.stdout + r.stderr, /Inode:|File not found/, 'debugfs answered');
    return !/File not found/.test(`${r.stdout}${r.stderr}`);
  } finally {
    rmSync(part, { force: true });
  }
}

const CUSTOM_TASK = `#!/bin/sh
set -e
echo x > "$SNF_IMAGE_TARGET/root/x"
env | sed -n 's/^\\(SNF_IMAGE_[A-Z0-9_]*\\)=.*/\\1/p' | sort > "$SNF_IMAGE_TARGET/root/env-names"
echo "$SNF_IMAGE_HOSTNAME|$SNF_IMAGE_DEV|$SNF_IMAGE_DEV_COUNT|$SNF_IMAGE_PROPERTY_OSFAMILY|$SNF_IMAGE_PROPERTY_ROOT_PARTITION|$SNF_IMAGE_NIC_COUNT|$SNF_IMAGE_NIC_0_MAC|$SNF_IMAGE_NIC_0_MODE|$SNF_IMAGE_DHCP_TAGS|$SNF_IMAGE_TYPE|$SNF_IMAGE_RESIZE_PART|\${SNF_IMAGE_PASSWD:-no-secret}" > "$SNF_IMAGE_TARGET/root/env-values"
test -f "$SNF_IMAGE_TARGET/srv/on-srv"
echo upstream-task-done
`;

describe('upstream-compatible deployment (real helper VM)', { skip, timeout: 3_600_000 }, () => {
  let helperDir = '';
  const nodes: NodeFixture[] = [];
  before(() => {
    helperDir = ensureHelper();
  });
  after(() => {
    for (const node of nodes) rmSync(node.root, { recursive: true, force: true });
  });

  it('a guest without os-release and without ROOT_PARTITION, /srv on its own filesystem, a CUSTOM_TASK and override written for upstream', async () => {
    const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\n`);
    nodes.push(node);
    makeGuest(join(node.imageDir, 'guest.img'), {
      'bin/busybox': readFileSync(BUSYBOX),
      // Upstream style: the guest root at $SNF_IMAGE_TARGET ("/": the override runs chrooted).
      'root/snf-image/helper/overwrite_task_AssignHostname': `#!/bin/busybox sh\nif [ "$1" = pre-exec ]; then echo "$SNF_IMAGE_TASK $SNF_IMAGE_HOSTNAME $SNF_IMAGE_PROPERTY_OSFAMILY" > "$SNF_IMAGE_TARGET/root/override"; exit 101; fi\n`,
    });
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '128M', disk]);
    const r = await runScript('create', {
      env: {
        ...CREATE_ENV,
        OSP_IMG_ID: 'guest.img',
        OSP_IMG_FORMAT: 'diskdump',
        OSP_IMG_PASSWD: SECRET,
        OSP_IMG_PROPERTIES: JSON.stringify({
          CUSTOM_TASK: b64(CUSTOM_TASK),
          ALLOW_MOUNTED_TASK_OVERWRITING: 'set',
          EXCLUDE_TASK_DELETESSHKEYS: 'Set',
          EXCLUDE_TASK_CHANGEMACHINEID: 'maybe',
          EXCLUDE_TASK_ADDSWAP: 'unset',
        }),
        OSP_IMG_PERSONALITY: JSON.stringify([
          { path: '/srv/data/hello.txt', contents: b64('hello /srv\n'), mode: 420 },
        ]),
        DISK_0_PATH: disk,
        INSTANCE_NAME: 'vm1.example.org',
        SNF_IMAGE_CONFIG: node.configFile,
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /image properties completed by detection: OSFAMILY=linux ROOT_PARTITION=1/);

    // MountImage mounted /srv: the personality file is in the /srv filesystem, not under the mount point.
    assert.equal(readGuestFile(disk, '/data/hello.txt', SRV_START), 'hello /srv\n');
    assert.equal(guestFileExists(disk, '/srv/data/hello.txt'), false, 'nothing hidden under the mount point');
    assert.equal(guestFileExists(disk, '/srv/README'), true, 'the root filesystem is the one looked at');

    // CUSTOM_TASK: upstream's variables, the guest writable at SNF_IMAGE_TARGET, no secret.
    assert.equal(readGuestFile(disk, '/root/x'), 'x\n');
    assert.equal(
      readGuestFile(disk, '/root/env-values'),
      `vm1.example.org|/dev/vdb|1|linux|1|1|${CREATE_ENV.NIC_0_MAC}|bridged|auto dhcp nfdhcpd|diskdump|2|no-secret\n`,
    );
    const names = readGuestFile(disk, '/root/env-names').trim().split('\n');
    for (const name of ['SNF_IMAGE_TARGET', 'SNF_IMAGE_DEV_0', 'SNF_IMAGE_NIC_0_UUID', 'SNF_IMAGE_PERSONALITY'])
      assert.ok(names.includes(name), name);
    for (const name of names) assert.doesNotMatch(name, /PASSWD|AUTH_KEYS|CLOUD_USERDATA|PRODUCT_KEY|CUSTOM_TASK/);
    assert.match(r.stderr, /CUSTOM_TASK finished: upstream-task-done/);

    // The override (ALLOW_MOUNTED_TASK_OVERWRITING=set) found the guest root at SNF_IMAGE_TARGET, then the task ran.
    assert.equal(readGuestFile(disk, '/root/override'), 'AssignHostname vm1.example.org linux\n');
    assert.equal(readGuestFile(disk, '/etc/hostname'), 'vm1.example.org\n');

    // check_yes_no: "Set" and "maybe" mean yes (the latter with upstream's warning), "unset" no.
    assert.equal(readGuestFile(disk, '/etc/machine-id'), `${'f'.repeat(32)}\n`, 'ChangeMachineId excluded');
    assert.match(
      r.stderr,
      /Invalid value for variable: `EXCLUDE_TASK_CHANGEMACHINEID' \(=maybe\)\. Will treat this as a `YES'/,
    );
    assert.match(r.stderr, /task DeleteSSHKeys skipped: excluded by EXCLUDE_TASK_DeleteSSHKeys/);
    assert.ok(!r.stderr.includes(SECRET), 'no secret in the log');

    // yescrypt, as the guest's libcrypt supports it; the hash verifies the password.
    const rootHash = readGuestFile(disk, '/etc/shadow')
      .split('\n')
      .find((l) => l.startsWith('root:'))
      ?.split(':')[1];
    assert.match(rootHash ?? '', /^\$y\$/);
    assert.ok(guestPasswordMatches(disk, 1, 'root', SECRET), 'the yescrypt hash verifies the password');
  });
});
