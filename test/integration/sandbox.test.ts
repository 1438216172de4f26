/**
 * The sandbox of CUSTOM_TASK and the in-image overrides, on this machine (root, no helper
 * VM): the programs see a private /dev, /proc, /tmp and /run, hold only the capabilities
 * to edit guest files, cannot make device nodes, mount or chroot, and nothing they start
 * outlives them. Only probes that change nothing when they do succeed (opened and closed
 * without a write) run here; the helper VM test (helper-trust.test.ts) goes further.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { HelperContext } from '../../helper/context.ts';
import { runInGuest } from '../../helper/programs/guest-program.ts';
import { runCustomTask } from '../../helper/tasks/custom-task.ts';
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';

const BUSYBOX = '/bin/busybox';
const skip =
  process.getuid?.() !== 0
    ? 'needs root (namespaces, mounts)'
    : spawnSync(BUSYBOX, ['true']).status !== 0
      ? `${BUSYBOX} (static) is not installed`
      : spawnSync('unshare', ['--mount', '--pid', '--fork', 'true']).status !== 0
        ? 'unshare cannot make mount and PID namespaces here'
        : false;

const roots: string[] = [];
function guestRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'snf-sandbox-'));
  roots.push(root);
  for (const dir of ['bin', 'etc', 'root', 'mnt']) mkdirSync(join(root, dir));
  writeFileSync(join(root, 'bin/busybox'), readFileSync(BUSYBOX), { mode: 0o755 });
  writeFileSync(join(root, 'etc/hosts'), '127.0.0.1 localhost\n');
  return root;
}

function context(target: string, customTask: string): HelperContext {
  const config = {
    hostname: 'vm1.example.org',
    personality: [],
    nics: [],
    disks: [],
    properties: {},
    network: { dhcpTags: [], statefulDhcpv6Tags: [], statelessDhcpv6Tags: [], defaultNicConfig: 'dhcp' },
    secrets: {},
  } as unknown as ConfigDocument;
  return {
    config,
    disk: '/dev/null',
    disks: [],
    properties: { OSFAMILY: 'linux', CUSTOM_TASK: Buffer.from(customTask).toString('base64') },
    target,
    mounts: [],
    warn: () => undefined,
    info: () => undefined,
  };
}

/** Probes that leave everything as it was even where they succeed: "<name> allowed|denied" lines. */
const PROBES = (
  shell: string,
  out: string,
  marker: string,
  mnt: string,
) => `try() { name=$1; shift; if ( "$@" ) >/dev/null 2>&1; then echo "$name allowed"; else echo "$name denied"; fi >> ${out}; }
: > ${out}
try mknod-serial ${shell} -c 'mknod ${out}.serial c 4 65'
try mount-tmpfs ${shell} -c 'mount -t tmpfs none ${mnt}'
try chroot-again ${shell} -c 'chroot / /bin/true || chroot / /bin/busybox true'
try see-helper-tmp ${shell} -c 'test -e ${marker}'
try write-dev ${shell} -c ': > /dev/ttyS1'
try open-sysctl ${shell} -c ': > /proc/sys/kernel/hostname'
try open-sysrq ${shell} -c ': > /proc/sysrq-trigger'
try see-disks ${shell} -c 'ls /sys/block | grep -q .'
try see-other-processes ${shell} -c 'test $(ls -d /proc/[0-9]* | wc -l) -gt 20'
`;

describe('the sandbox of CUSTOM_TASK and overrides (this machine, root)', { skip }, () => {
  // In /tmp itself (the helper's /tmp, which the sandbox hides), whatever TMPDIR the tests run with.
  const marker = join('/tmp', `snf-sandbox-marker-${process.pid}`);
  writeFileSync(marker, "the helper's /tmp\n");
  after(() => {
    rmSync(marker, { force: true });
    for (const root of roots) {
      spawnSync('umount', ['-R', '-l', join(root, 'mnt')]);
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('CUSTOM_TASK: only the guest and harmless devices, capabilities chown/dac_override/fowner/fsetid/sys_chroot, guest files still edited, chroot into the guest works', async () => {
    const target = guestRoot();
    const script = `#!/bin/sh
${PROBES('sh', '"$TARGET/etc/probe"', marker, '"$TARGET/mnt"')}
ls -A /dev | tr '\\n' ' ' >> "$TARGET/etc/probe"; echo >> "$TARGET/etc/probe"
grep CapEff /proc/self/status | tr -d '\\t' >> "$TARGET/etc/probe"
echo edited >> "$TARGET/etc/hosts"
chown 1000:1000 "$TARGET/etc/hosts"
chmod 0640 "$TARGET/etc/hosts"
chroot "$TARGET" /bin/busybox sh -c 'echo chrooted > /etc/chrooted'
`;
    await runCustomTask(context(target, script));
    assert.deepEqual(readFileSync(join(target, 'etc/probe'), 'utf8').trim().split('\n'), [
      ...['mknod-serial', 'mount-tmpfs'].map((p) => `${p} denied`),
      // upstream's custom tasks may run programs of the guest with chroot "$TARGET" ...
      'chroot-again allowed',
      ...['see-helper-tmp', 'write-dev', 'open-sysctl', 'open-sysrq', 'see-disks', 'see-other-processes'].map(
        (p) => `${p} denied`,
      ),
      'fd full null random stderr stdin stdout urandom zero ',
      'CapEff:000000000004001b',
    ]);
    assert.equal(readFileSync(join(target, 'etc/chrooted'), 'utf8'), 'chrooted\n');
    assert.equal(readFileSync(join(target, 'etc/hosts'), 'utf8'), '127.0.0.1 localhost\nedited\n');
    const st = statSync(join(target, 'etc/hosts'));
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1000, 1000, 0o640]);
  });

  it('an override runs chrooted with the same limits; nothing it starts outlives it', async () => {
    const target = guestRoot();
    writeFileSync(
      join(target, 'bin/probe'),
      `#!/bin/busybox sh
export PATH=/bin
for a in sh mknod mount chroot true ls grep cat test setsid sleep wc; do /bin/busybox ln -s busybox /bin/$a; done
${PROBES('/bin/busybox sh', '/etc/probe', marker, '/mnt')}
ls -A /dev | /bin/busybox tr '\\n' ' ' >> /etc/probe
setsid sleep 317 </dev/null >/dev/null 2>&1 &
exit 101
`,
      { mode: 0o755 },
    );
    const r = await runInGuest(target, '/bin/probe', ['pre-exec'], { env: { SNF_IMAGE_TASK: 'AssignHostname' } });
    const left = spawnSync('pgrep', ['-f', '^sleep 317$']).stdout.toString().trim();
    for (const pid of left.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    assert.equal(left, '', "the program's daemon died with it");
    assert.equal(r.code, 101, r.stderr);
    assert.deepEqual(readFileSync(join(target, 'etc/probe'), 'utf8').trim().split('\n'), [
      // no /proc in the chroot: the /proc probes fail there for want of it, as they did before
      ...[
        'mknod-serial',
        'mount-tmpfs',
        'chroot-again',
        'see-helper-tmp',
        'write-dev',
        'open-sysctl',
        'open-sysrq',
        'see-disks',
        'see-other-processes',
      ].map((p) => `${p} denied`),
      '.snf-sandbox full null random urandom zero',
    ]);
  });
});
