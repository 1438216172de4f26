/**
 * The guest-side trust boundary in real helper VMs:
 * - links an image plants at the names the helper writes to (`<file>.snf-image-tmp`
 *   pointing at the result and monitor ports, or at another file of the guest) are never
 *   followed: the deployment reports its true result, the links are left as they were;
 * - a CUSTOM_TASK and an in-image override run confined: no config floppy, serial port,
 *   disk, device node, helper process, mount, kernel setting or chroot within reach, while
 *   a normal custom task still edits guest files (owner and mode included).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { makeSyntheticGuest, readGuestFile, type GuestOptions } from '../support/synthetic-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const skip = helperSkipReason();
const BUSYBOX = '/bin/busybox';
const busyboxMissing = spawnSync(BUSYBOX, ['true']).status === 0 ? false : `${BUSYBOX} (static) is not installed`;
let helperDir = '';
const nodes: NodeFixture[] = [];

async function deploy(guest: GuestOptions, properties: Record<string, string> = {}) {
  const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\n`);
  nodes.push(node);
  makeSyntheticGuest(join(node.imageDir, 'guest.img'), guest);
  const disk = join(node.root, 'disk0');
  execFileSync('truncate', ['-s', '96M', disk]);
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: 'guest.img',
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PASSWD: 'Trust-pw-5150',
      OSP_IMG_PROPERTIES: JSON.stringify(properties),
      DISK_0_PATH: disk,
      INSTANCE_NAME: 'vm1.example.org',
      SNF_IMAGE_CONFIG: node.configFile,
    },
  });
  return { ...r, disk };
}

/** debugfs stat of a guest path on the deployed disk's first partition: type, link target, mode, owner. */
function guestStat(
  disk: string,
  guestPath: string,
): { type: string; link?: string; mode: number; uid: number; gid: number } {
  const part = `${disk}.p1`;
  execFileSync('dd', [`if=${disk}`, `of=${part}`, 'bs=512', 'skip=2048', 'status=none']);
  try {
    const out = execFileSync('debugfs', ['-R', `stat ${guestPath}`, part], {
      stdio: ['ignore', 'pipe', 'ignore'],
    }).toString();
    const type = /Type: (\S+)/.exec(out)?.[1] ?? 'missing';
    const link = /Fast link dest: "(.*)"/.exec(out)?.[1];
    const mode = parseInt(/Mode:\s+(\d+)/.exec(out)?.[1] ?? '0', 8);
    const uid = Number(/User:\s+(\d+)/.exec(out)?.[1]);
    const gid = Number(/Group:\s+(\d+)/.exec(out)?.[1]);
    return { type, ...(link !== undefined ? { link } : {}), mode, uid, gid };
  } finally {
    rmSync(part, { force: true });
  }
}

/** Shell lines recording, for each attempt, whether it worked: "<name> allowed|denied". */
const PROBES = (
  shell: string,
  out: string,
) => `try() { name=$1; shift; if ( "$@" ) >/dev/null 2>&1; then echo "$name allowed"; else echo "$name denied"; fi >> ${out}; }
: > ${out}
try read-config-floppy ${shell} -c 'dd if=/dev/fd0 of=/dev/null bs=512 count=1'
try open-result-port ${shell} -c 'exec 3>/dev/ttyS1'
try open-monitor-port ${shell} -c 'exec 3>/dev/ttyS2'
try read-disk ${shell} -c 'dd if=/dev/vda of=/dev/null bs=512 count=1'
try mknod-disk ${shell} -c 'mknod ${out}.disk b 254 0'
try mknod-serial ${shell} -c 'mknod ${out}.serial c 4 65'
try helper-fds ${shell} -c 'ls -l /proc/[0-9]*/fd/ | grep -q -e ttyS -e fd0'
try mount-proc ${shell} -c 'mount -t proc proc /mnt'
try chroot-again ${shell} -c 'chroot / /bin/true || chroot / /bin/busybox true'
`;
const ATTEMPTS = [
  'read-config-floppy',
  'open-result-port',
  'open-monitor-port',
  'read-disk',
  'mknod-disk',
  'mknod-serial',
  'helper-fds',
  'mount-proc',
  'chroot-again',
];

describe('the guest-side trust boundary in the helper VM (real QEMU)', { skip, timeout: 3_600_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
  });
  after(() => {
    for (const node of nodes) rmSync(node.root, { recursive: true, force: true });
  });

  it('links planted at the temporary names (to the result and monitor ports, to the guest passwd file) are not followed: SUCCESS, links untouched', async () => {
    const links = {
      'etc/hosts.snf-image-tmp': '/dev/ttyS1',
      'etc/hostname.snf-image-tmp': '/dev/ttyS2',
      'etc/machine-id.snf-image-tmp': 'passwd',
    };
    const r = await deploy({ links });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Customization status is: SUCCESS/);
    assert.match(readGuestFile(r.disk, '/etc/hosts'), /^127\.0\.1\.1\tvm1\.example\.org vm1$/m);
    assert.equal(readGuestFile(r.disk, '/etc/hostname'), 'vm1.example.org\n');
    assert.match(readGuestFile(r.disk, '/etc/machine-id'), /^[0-9a-f]{32}\n$/);
    assert.equal(
      readGuestFile(r.disk, '/etc/passwd'),
      'root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000:User:/home/user:/bin/bash\n',
      'the link target inside the guest is untouched',
    );
    for (const path of ['/etc/hosts', '/etc/hostname', '/etc/machine-id'])
      assert.equal(guestStat(r.disk, path).type, 'regular', path);
    for (const [path, target] of Object.entries(links))
      assert.equal(guestStat(r.disk, `/${path}`).link, target, `/${path} is left as it was`);
  });

  it('CUSTOM_TASK runs without the config, ports, device nodes, helper processes, mounts or kernel settings, and still edits the guest, reads the instance disk and chroots into the guest', async () => {
    const script = `#!/bin/sh
${PROBES('sh', '"$TARGET/etc/sandbox-probe"')}
try sysctl-write sh -c 'echo snf-sandbox > /proc/sys/kernel/hostname'
try sysrq sh -c 'echo h > /proc/sysrq-trigger'
try sysfs sh -c 'ls /sys/block | grep -q vd'
try remount-guest sh -c "mount -o remount,suid,dev '$TARGET'"
try read-instance-disk sh -c 'dd if="$DEV_0" of=/dev/null bs=512 count=1'
grep CapEff /proc/self/status | tr -d '\\t' >> "$TARGET/etc/sandbox-probe"
echo edited > "$TARGET/etc/custom-task-ran"
chown 1000:1000 "$TARGET/etc/custom-task-ran"
chmod 0640 "$TARGET/etc/custom-task-ran"
`;
    const r = await deploy({}, { CUSTOM_TASK: Buffer.from(script).toString('base64') });
    assert.equal(r.code, 0, r.stderr);
    const probe = readGuestFile(r.disk, '/etc/sandbox-probe').trim().split('\n');
    // The administrator's program keeps what upstream's custom tasks use: the instance disk
    // (DEV_<i>, e.g. a bootloader install) and chroot "$TARGET"; not the helper's own disk
    // (read-disk: /dev/vda is the helper root).
    const allowed = new Set(['chroot-again', 'read-instance-disk']);
    assert.deepEqual(
      probe,
      [...ATTEMPTS, 'sysctl-write', 'sysrq', 'sysfs', 'remount-guest', 'read-instance-disk']
        .map((a) => `${a} ${allowed.has(a) ? 'allowed' : 'denied'}`)
        .concat('CapEff:000000000004001b'),
    );
    assert.equal(readGuestFile(r.disk, '/etc/custom-task-ran'), 'edited\n');
    assert.deepEqual(guestStat(r.disk, '/etc/custom-task-ran'), { type: 'regular', mode: 0o640, uid: 1000, gid: 1000 });
  });

  it('an in-image override runs chrooted without the config, ports, disks, device nodes, mounts or a second chroot', {
    skip: busyboxMissing,
  }, async () => {
    const override = `#!/bin/busybox sh
[ "$1" = pre-exec ] || exit 0
export PATH=/bin
${PROBES('/bin/busybox sh', '/etc/override-probe')}
exit 101
`;
    const links: Record<string, string> = {};
    for (const applet of ['sh', 'dd', 'mknod', 'ls', 'grep', 'mount', 'chroot', 'true'])
      links[`bin/${applet}`] = 'busybox';
    const r = await deploy(
      {
        files: { 'mnt/.keep': '' },
        executables: {
          'bin/busybox': readFileSync(BUSYBOX),
          'root/snf-image/helper/overwrite_task_AssignHostname': override,
        },
        links,
      },
      { ALLOW_MOUNTED_TASK_OVERWRITING: 'yes' },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      readGuestFile(r.disk, '/etc/override-probe').trim().split('\n'),
      ATTEMPTS.map((a) => `${a} denied`),
    );
    assert.equal(readGuestFile(r.disk, '/etc/hostname'), 'vm1.example.org\n', 'the built-in task ran after pre-exec');
  });
});
