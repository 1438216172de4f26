/**
 * Writes into a guest tree never follow a link the image planted: at the temporary name, at
 * a backup name, at a directory on the way or at the final name. A temporary directory
 * acts as the guest root; a sentinel file outside it must keep its content, mode and owner
 * whatever the tasks write. Owners are changed, so the tests that chown need root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { changeBsdPasswords, assignBsdHostname } from '../../helper/os/bsd.ts';
import { GuestFs } from '../../helper/guest-files.ts';
import { applyNetwork, backupStamp } from '../../helper/network/apply.ts';
import type { NicModel } from '../../helper/network/model.ts';
import { addAuthorizedKeys, assignHostname, changeMachineId, changePasswords } from '../../helper/os/linux.ts';
import { injectFile } from '../../helper/os/windows.ts';

const root = process.getuid?.() === 0 ? false : 'needs root (files are chowned)';

interface Sentinel {
  path: string;
  check(): void;
}

/** A file outside the guest root (owner 1234:1234, mode 0600) that must never change. */
function sentinel(): Sentinel {
  const dir = mkdtempSync(join(tmpdir(), 'snf-outside-'));
  const path = join(dir, 'victim');
  writeFileSync(path, 'outside the guest\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  chownSync(path, 1234, 1234);
  const before = statSync(path);
  return {
    path,
    check() {
      const now = statSync(path);
      assert.equal(readFileSync(path, 'utf8'), 'outside the guest\n', 'the file outside the guest is not written');
      assert.equal(now.mode & 0o7777, 0o600, 'the file outside the guest is not chmodded');
      assert.deepEqual([now.uid, now.gid], [1234, 1234], 'the file outside the guest is not chowned');
      assert.equal(now.mtimeMs, before.mtimeMs);
      assert.deepEqual(readdirSync(dir), ['victim'], 'nothing is created next to it');
    },
  };
}

function guestTree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'snf-guest-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const LINUX = {
  'etc/os-release': 'ID=debian\n',
  'etc/hostname': 'template\n',
  'etc/hosts': '127.0.0.1\tlocalhost\n',
  'etc/shadow': 'root:*:19000:0:99999:7:::\n',
  'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n',
  'etc/machine-id': `${'f'.repeat(32)}\n`,
  'var/lib/dbus/machine-id': `${'f'.repeat(32)}\n`,
  'root/.ssh/authorized_keys': 'ssh-ed25519 AAAA old\n',
  'etc/network/interfaces': 'auto lo\niface lo inet loopback\n',
  'sbin/ifup': '',
  'lib/systemd/systemd-udevd': '',
};
const BSD = {
  'etc/rc.conf': 'hostname="template"\n',
  'etc/master.passwd': 'root:*:0:0::0:0:Charlie &:/root:/bin/sh\n',
  'etc/rc.local': '',
};
const NOW = new Date('2025-03-04T05:06:07Z');
const NIC: NicModel = { index: 0, mac: 'aa:00:00:12:34:56', name: 'snf0', source: 'network', ipv4: { method: 'dhcp' } };

interface Case {
  task: string;
  tree: Record<string, string>;
  /** Guest files the task writes (each gets a link at <file>.snf-image-tmp). */
  writes: string[];
  /** Extra names to plant links at (backup names). */
  plant?: string[];
  run(fs: GuestFs): void;
}

const CASES: Case[] = [
  {
    task: 'AssignHostname (Linux)',
    tree: LINUX,
    writes: ['/etc/hostname', '/etc/hosts'],
    run: (fs) => void assignHostname(fs, 'vm1.example.org'),
  },
  {
    task: 'ChangePassword (Linux shadow)',
    tree: LINUX,
    writes: ['/etc/shadow'],
    run: (fs) => changePasswords(fs, ['root'], '$6$x$y'),
  },
  {
    task: 'ChangeMachineId',
    tree: LINUX,
    writes: ['/etc/machine-id', '/var/lib/dbus/machine-id'],
    run: (fs) => void changeMachineId(fs),
  },
  {
    task: 'authorized keys',
    tree: LINUX,
    writes: ['/root/.ssh/authorized_keys'],
    run: (fs) => void addAuthorizedKeys(fs, ['root'], 'ssh-ed25519 AAAA new'),
  },
  {
    task: 'ConfigureNetwork (ifupdown, with a backup)',
    tree: LINUX,
    writes: [
      '/etc/network/interfaces',
      `/etc/network/interfaces.snf-image-${backupStamp(NOW)}-1`,
      '/etc/systemd/network/10-snf-image-0.link',
    ],
    plant: [`/etc/network/interfaces.snf-image-${backupStamp(NOW)}`],
    run: (fs) => void applyNetwork(fs, 'ifupdown', [NIC], NOW),
  },
  {
    task: 'AssignHostname (FreeBSD rc.conf)',
    tree: BSD,
    writes: ['/etc/rc.conf'],
    run: (fs) => void assignBsdHostname(fs, 'freebsd', 'vm1.example.org'),
  },
  {
    task: 'ChangePassword (FreeBSD master.passwd, rc.local)',
    tree: BSD,
    writes: ['/etc/master.passwd', '/etc/rc.local'],
    run: (fs) => changeBsdPasswords(fs, 'freebsd', ['root'], '$6$x$y'),
  },
  {
    task: 'EnforcePersonality (Windows, with a backup)',
    tree: { 'Windows/motd.txt': 'old' },
    writes: ['/Windows/motd.txt', `/Windows/motd.txt.bak.${Math.floor(NOW.getTime() / 1000)}`],
    run: (fs) => injectFile(fs, '/Windows/motd.txt', Buffer.from('new'), NOW),
  },
];

describe('guest writes never follow a planted link', { skip: root }, () => {
  for (const c of CASES) {
    it(`${c.task}: links at the temporary and backup names lead nowhere`, () => {
      const outside = sentinel();
      const dir = guestTree(c.tree);
      const planted = [...c.writes.map((w) => `${w}.snf-image-tmp`), ...(c.plant ?? [])];
      for (const p of planted) {
        mkdirSync(join(dir, p, '..'), { recursive: true });
        symlinkSync(outside.path, join(dir, p));
      }
      c.run(new GuestFs(dir));
      outside.check();
      for (const w of c.writes) assert.ok(lstatSync(join(dir, w)).isFile(), `${w} is a regular file of the guest`);
      for (const p of planted)
        assert.equal(readlinkSync(join(dir, p)), outside.path, `the link at ${p} is left as it was`);
    });
  }

  it('a link at the final name is replaced, not followed; the new file gets exactly the mode and owner asked for', () => {
    const outside = sentinel();
    const dir = guestTree({ 'etc/x': '' });
    symlinkSync(outside.path, join(dir, 'etc/suid'));
    new GuestFs(dir).write('/etc/suid', 'data', { mode: 0o4755, uid: 1000, gid: 1000 });
    outside.check();
    const st = lstatSync(join(dir, 'etc/suid'));
    assert.ok(st.isFile());
    assert.equal(st.mode & 0o7777, 0o4755, 'the set-user-ID bit survives the owner change');
    assert.deepEqual([st.uid, st.gid], [1000, 1000]);
  });

  it('directories on the way: links resolve inside the guest (absolute, .., dangling), missing ones are created 0755', () => {
    const outside = sentinel();
    const dir = guestTree({ 'etc/x': '' });
    symlinkSync(join(outside.path, '..'), join(dir, 'etc/abs'));
    symlinkSync('../../../../..', join(dir, 'etc/up'));
    symlinkSync('/var/made/by/link', join(dir, 'etc/dangling'));
    const fs = new GuestFs(dir);
    fs.write('/etc/abs/victim', 'a');
    fs.write('/etc/up/victim', 'b');
    fs.write('/etc/dangling/file', 'c');
    outside.check();
    assert.equal(readFileSync(join(dir, outside.path), 'utf8'), 'a', 'the absolute link resolves inside the guest');
    assert.equal(readFileSync(join(dir, 'victim'), 'utf8'), 'b', '.. stops at the guest root');
    assert.equal(readFileSync(join(dir, 'var/made/by/link/file'), 'utf8'), 'c');
    assert.equal(statSync(join(dir, 'var/made/by')).mode & 0o7777, 0o755);
  });

  it('mkdirp creates what is missing with the given mode and owner, through links inside the guest only', () => {
    const outside = sentinel();
    const dir = guestTree({ 'etc/x': '' });
    mkdirSync(join(dir, 'home'));
    symlinkSync(join(outside.path, '..'), join(dir, 'home/user'));
    new GuestFs(dir).mkdirp('/home/user/.ssh', 0o700, 1000, 1000);
    outside.check();
    const made = statSync(join(dir, outside.path, '../.ssh'));
    assert.equal(made.mode & 0o7777, 0o700);
    assert.deepEqual([made.uid, made.gid], [1000, 1000]);
  });

  it('remove unlinks a planted link itself, never its target; a directory on the way resolves inside the guest', () => {
    const outside = sentinel();
    const dir = guestTree({ 'etc/x': '' });
    symlinkSync(outside.path, join(dir, 'etc/spwd.db'));
    symlinkSync(join(outside.path, '..'), join(dir, 'etc/ssh'));
    const fs = new GuestFs(dir);
    fs.remove('/etc/spwd.db');
    fs.remove('/etc/ssh/victim');
    outside.check();
    assert.equal(existsSync(join(dir, 'etc/spwd.db')), false);
  });

  it('a directory at the final name is a one-line error naming the guest path; no temporary file is left', () => {
    const dir = guestTree({ 'etc/x': '' });
    mkdirSync(join(dir, 'etc/hosts'));
    assert.throws(
      () => new GuestFs(dir).write('/etc/hosts', 'x'),
      /^Error: cannot write the image's \/etc\/hosts: it is a directory$/,
    );
    assert.deepEqual(readdirSync(join(dir, 'etc')).sort(), ['hosts', 'x']);
  });
});

describe('guest reads', () => {
  it('a FIFO where a file is expected is a one-line error, not a hang', () => {
    const dir = guestTree({ 'etc/x': '' });
    spawnSync('mkfifo', [join(dir, 'etc/hosts')]);
    const script = `import { GuestFs } from ${JSON.stringify(new URL('../../helper/guest-files.ts', import.meta.url).href)};
try { new GuestFs(${JSON.stringify(dir)}).read('/etc/hosts'); console.log('read'); } catch (e) { console.log(e.message); }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
    assert.equal(r.signal, null, 'the read did not hang');
    assert.equal(r.stdout.trim(), "the image's /etc/hosts is not a regular file");
  });
});
