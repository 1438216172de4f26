import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { HelperContext } from '../../helper/context.ts';
import { TaskError } from '../../helper/exec.ts';
import { GuestFs } from '../../helper/guest-files.ts';
import { BsdDeviceError, nodeForStart, parseBsdDevice } from '../../helper/bsd/devices.ts';
import {
  buildDisklabel,
  checksum,
  DisklabelError,
  FS_BSDFFS,
  FS_SWAP,
  growDisklabel,
  lastLabelPartition,
  parseDisklabel,
  usedPartitions,
} from '../../helper/bsd/disklabel.ts';
import {
  DEFAULT_HASH_METHOD,
  masterPasswdWithPassword,
  MasterPasswdError,
  mkpasswdMethod,
  PWD_MKDB_MARKER,
  rcLocalWithPwdMkdb,
} from '../../helper/bsd/master-passwd.ts';
import { bsdPartitionType } from '../../helper/bsd/partition-types.ts';
import { rcConfValue, rcConfWith, RcConfError } from '../../helper/bsd/rc-conf.ts';
import { readUfsSuperblock, ufs2At64k, ufsTypeOf, withoutCheckHashes } from '../../helper/bsd/ufs.ts';
import {
  bsdInterfaces,
  BsdNetworkError,
  renderFreebsd,
  renderNetbsd,
  renderOpenbsd,
  type BsdNic,
} from '../../helper/network/bsd-renderers.ts';
import type { NicModel } from '../../helper/network/model.ts';
import { adapterFor } from '../../helper/os/adapter.ts';
import {
  assignBsdHostname,
  changeBsdPassword,
  changeBsdPasswords,
  configureBsdNetwork,
  deleteBsdSshKeys,
} from '../../helper/os/bsd.ts';
import { TASKS } from '../../helper/task-table.ts';
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';

const DISK = 2_097_152; // 1 GiB in sectors

describe('BSD partition types', () => {
  it('maps MBR slice types and GPT GUIDs to families, and only UFS/FFS types to root candidates', () => {
    assert.deepEqual(bsdPartitionType('a5'), { family: 'freebsd', root: true });
    assert.deepEqual(bsdPartitionType('a6'), { family: 'openbsd', root: true });
    assert.deepEqual(bsdPartitionType('0xA9'), { family: 'netbsd', root: true });
    assert.deepEqual(bsdPartitionType('516E7CB6-6ECF-11D6-8FF8-00022D09712B'), { family: 'freebsd', root: true });
    assert.deepEqual(bsdPartitionType('83bd6b9d-7f41-11dc-be0b-001560b84f0f'), { family: 'freebsd', root: false });
    assert.deepEqual(bsdPartitionType('516e7cb5-6ecf-11d6-8ff8-00022d09712b'), { family: 'freebsd', root: false });
    assert.deepEqual(bsdPartitionType('824cc7a0-36a8-11e3-890a-952519ad3f61'), { family: 'openbsd', root: true });
    assert.deepEqual(bsdPartitionType('49f48d5a-b10e-11dc-b99b-0019d1879648'), { family: 'netbsd', root: true });
    assert.equal(bsdPartitionType('83'), undefined);
    assert.equal(bsdPartitionType('0fc63daf-8483-4772-8e79-3d69d8477de4'), undefined);
  });
});

describe('disklabel', () => {
  const openbsd = () =>
    buildDisklabel({
      flavour: 'openbsd',
      sliceStart: 64,
      sliceSize: 200_000,
      diskSectors: DISK,
      duid: '3eb7f9da875cb9ee',
      partitions: [
        { letter: 'a', start: 64, size: 150_000, fstype: FS_BSDFFS },
        { letter: 'b', start: 150_064, size: 49_936, fstype: FS_SWAP },
      ],
    });
  const netbsd = () =>
    buildDisklabel({
      flavour: 'netbsd',
      sliceStart: 63,
      sliceSize: 300_000,
      diskSectors: DISK,
      partitions: [
        { letter: 'b', start: 63, size: 20_000, fstype: FS_SWAP },
        { letter: 'a', start: 20_063, size: 200_000, fstype: FS_BSDFFS },
        { letter: 'e', start: 220_063, size: 80_000, fstype: FS_BSDFFS },
      ],
    });
  const freebsd = () =>
    buildDisklabel({
      flavour: 'freebsd',
      sliceStart: 63,
      sliceSize: 100_000,
      diskSectors: DISK,
      partitions: [{ letter: 'a', start: 63 + 16, size: 99_984, fstype: FS_BSDFFS }],
    });

  it('parses each flavour: letters, disk offsets, sizes, OpenBSD DUID', () => {
    const o = parseDisklabel(openbsd(), 'openbsd');
    assert.equal(o.duid, '3eb7f9da875cb9ee');
    assert.deepEqual(
      usedPartitions(o, 64).map((p) => [p.letter, p.start, p.size]),
      [
        ['a', 64, 150_000],
        ['b', 150_064, 49_936],
      ],
    );
    const n = parseDisklabel(netbsd(), 'netbsd');
    assert.equal(n.duid, '');
    assert.deepEqual(
      usedPartitions(n, 63).map((p) => p.letter),
      ['a', 'b', 'e'],
    );
    assert.equal(lastLabelPartition(n, 63)?.letter, 'e');
    // FreeBSD offsets are relative to the slice (c at 0): absolute start = slice + offset.
    const f = parseDisklabel(freebsd(), 'freebsd');
    assert.equal(f.partitions[0]?.offset, 16);
    assert.deepEqual(
      usedPartitions(f, 63).map((p) => [p.letter, p.start]),
      [['a', 79]],
    );
  });

  it('accepts old FreeBSD labels with absolute offsets (c starts at the slice)', () => {
    const sector = freebsd();
    sector.writeUInt32LE(63, 148 + 2 * 16 + 4); // c.p_offset = slice start
    sector.writeUInt32LE(79, 148 + 4); // a.p_offset absolute
    sector.writeUInt16LE(checksum(sector, sector.readUInt16LE(138)), 136);
    assert.equal(usedPartitions(parseDisklabel(sector, 'freebsd'), 63)[0]?.start, 79);
  });

  it('grows the last partition to the end of a grown slice, the raw partitions with it, checksum valid', () => {
    const grown = growDisklabel(netbsd(), 'netbsd', 63, DISK - 63, DISK);
    assert.equal(grown.grown, 'e');
    assert.equal(grown.oldSize, 80_000);
    assert.equal(grown.newSize, DISK - 220_063);
    const n = parseDisklabel(grown.sector, 'netbsd');
    const by = (l: string) => n.partitions.find((p) => p.letter === l);
    assert.deepEqual([by('c')?.offset, by('c')?.size], [63, DISK - 63]);
    assert.deepEqual([by('d')?.offset, by('d')?.size], [0, DISK]);
    assert.equal(by('a')?.size, 200_000, 'other partitions unchanged');
    assert.equal(n.secperunit, DISK);

    const o = growDisklabel(openbsd(), 'openbsd', 64, DISK - 64, DISK);
    assert.equal(o.grown, 'b', 'the last partition grows even when it is swap');
    const ol = parseDisklabel(o.sector, 'openbsd');
    assert.equal(ol.duid, '3eb7f9da875cb9ee', 'DUID kept');
    assert.equal(ol.partitions.find((p) => p.letter === 'c')?.size, DISK);
    assert.equal(o.sector.readUInt32LE(84), DISK, 'd_bend follows the slice end');

    const f = growDisklabel(freebsd(), 'freebsd', 63, DISK - 63, DISK);
    const fl = parseDisklabel(f.sector, 'freebsd');
    assert.equal(fl.partitions.find((p) => p.letter === 'c')?.size, DISK - 63);
    assert.equal(fl.partitions.find((p) => p.letter === 'a')?.size, DISK - 63 - 16);
  });

  it('keeps 48-bit OpenBSD sizes (p_sizeh) beyond 2 TiB', () => {
    const big = 6_000_000_000;
    const o = parseDisklabel(growDisklabel(openbsd(), 'openbsd', 64, big - 64, big).sector, 'openbsd');
    assert.equal(o.partitions.find((p) => p.letter === 'b')?.size, big - 150_064);
    assert.equal(o.secperunit, big);
    assert.throws(() => growDisklabel(netbsd(), 'netbsd', 63, big - 63, big), /32-bit disklabel/);
  });

  it('refuses hostile labels with one line naming the problem', () => {
    assert.throws(
      () => parseDisklabel(Buffer.alloc(512), 'openbsd'),
      /no BSD disklabel in the slice \(magic 0x82564557 missing at sector 1\)/,
    );
    const corrupt = openbsd();
    corrupt.writeUInt32LE(1, 148);
    assert.throws(() => parseDisklabel(corrupt, 'openbsd'), /checksum mismatch/);
    const many = openbsd();
    many.writeUInt16LE(200, 138);
    assert.throws(() => parseDisklabel(many, 'openbsd'), /has 200 partitions \(must be 3 to 22\)/);
    const outside = buildDisklabel({
      flavour: 'netbsd',
      sliceStart: 63,
      sliceSize: 1000,
      diskSectors: DISK,
      partitions: [{ letter: 'a', start: 63, size: 5000, fstype: FS_BSDFFS }],
    });
    assert.throws(
      () => growDisklabel(outside, 'netbsd', 63, 1000, DISK),
      (e: Error) =>
        e instanceof DisklabelError &&
        /partition a \(sectors 63\+5000\) lies outside its slice/.test(e.message) &&
        !e.message.includes('\n'),
    );
    assert.throws(() => parseDisklabel(Buffer.alloc(100), 'netbsd'), /100 bytes, not 512/);
  });
});

describe('BSD fstab devices', () => {
  it('maps disklabel names, DUIDs, FreeBSD slices and GPT partitions', () => {
    assert.deepEqual(parseBsdDevice('/dev/wd0a', ''), { kind: 'letter', letter: 'a' });
    assert.deepEqual(parseBsdDevice('/dev/sd0e', ''), { kind: 'letter', letter: 'e' });
    assert.deepEqual(parseBsdDevice('3eb7f9da875cb9ee.d', '3eb7f9da875cb9ee'), { kind: 'letter', letter: 'd' });
    assert.deepEqual(parseBsdDevice('/dev/ada0s1a', ''), { kind: 'letter', letter: 'a' });
    assert.deepEqual(parseBsdDevice('/dev/vtbd0p2', ''), { kind: 'gpt', number: 2 });
    assert.throws(
      () => parseBsdDevice('0123456789abcdef.a', '3eb7f9da875cb9ee'),
      (e: Error) =>
        e instanceof BsdDeviceError &&
        /names disk 0123456789abcdef, not this image's disklabel UID 3eb7f9da875cb9ee/.test(e.message),
    );
    assert.throws(() => parseBsdDevice('/dev/gpt/rootfs', ''), /GEOM labels are not supported/);
    assert.throws(() => parseBsdDevice('/etc/../../dev/sda', ''), /not a BSD disk partition name/);
    const parts = [
      { node: '/dev/vdb1', start: 64, size: 200_000 },
      { node: '/dev/vdb5', start: 64, size: 150_000 },
      { node: '/dev/vdb6', start: 150_064, size: 49_936 },
    ];
    assert.equal(nodeForStart(parts, 64, 150_000, 'a'), '/dev/vdb5');
    assert.equal(nodeForStart(parts, 150_064, 49_936, 'b'), '/dev/vdb6');
    assert.throws(
      () => nodeForStart(parts, 7, 1, 'disklabel partition e'),
      /disklabel partition e \(sector 7\) has no partition device/,
    );
  });
});

describe('master.passwd and pwd_mkdb', () => {
  const MASTER =
    'root:$2b$09$old:0:0:daemon:1700000000:0:Charlie &:/root:/bin/ksh\ntoor:*:0:0::0:0:Bourne-again Superuser:/root:\nuser:*:1000:1000::0:0:User:/home/user:/bin/sh\n';
  it('sets the hash and resets the change field of the named users only', () => {
    const out = masterPasswdWithPassword(MASTER, ['root', 'user'], '$2b$10$new');
    assert.deepEqual(
      out.split('\n').map((l) => l.split(':').slice(0, 6).join(':')),
      ['root:$2b$10$new:0:0:daemon:0', 'toor:*:0:0::0', 'user:$2b$10$new:1000:1000::0', ''],
    );
    assert.ok(out.includes('Charlie &:/root:/bin/ksh'));
  });
  it('errors on unknown users and on hashes that would break the file', () => {
    assert.throws(
      () => masterPasswdWithPassword(MASTER, ['nobody2'], '$6$x'),
      (e: Error) =>
        e instanceof MasterPasswdError &&
        e.message === "user(s) nobody2 do not exist in the image's /etc/master.passwd",
    );
    assert.throws(() => masterPasswdWithPassword(MASTER, ['root'], 'a:b'), /contains ":" or a newline/);
  });
  it("uses each family's default hash and refuses methods its crypt(3) lacks", () => {
    assert.deepEqual(DEFAULT_HASH_METHOD, { freebsd: 'sha512', openbsd: 'blowfish', netbsd: 'blowfish' });
    assert.equal(mkpasswdMethod('freebsd', 'sha512'), 'sha512crypt');
    assert.equal(mkpasswdMethod('openbsd', 'blowfish'), 'bcrypt');
    assert.equal(mkpasswdMethod('netbsd', 'blowfish'), 'bcrypt-a');
    assert.throws(() => mkpasswdMethod('openbsd', 'sha512'), /sha512 is not supported by openbsd's crypt\(3\)/);
    assert.throws(() => mkpasswdMethod('netbsd', 'sha1'), /sha1 is not supported for netbsd/);
  });
  it('adds the first-boot pwd_mkdb block to rc.local once', () => {
    const once = rcLocalWithPwdMkdb('#!/bin/sh\necho hello\n');
    assert.ok(once.startsWith('#!/bin/sh\necho hello\n# BEGIN snf-image'));
    assert.ok(
      once.includes(
        `if [ -f ${PWD_MKDB_MARKER} ]; then\n\t/usr/sbin/pwd_mkdb -p /etc/master.passwd && rm -f ${PWD_MKDB_MARKER}\nfi`,
      ),
    );
    assert.equal(rcLocalWithPwdMkdb(once), once);
    assert.ok(rcLocalWithPwdMkdb('').startsWith('#!/bin/sh\n# BEGIN'));
  });
});

describe('rc.conf', () => {
  it('replaces assignments, keeps the rest, refuses unsafe values', () => {
    const text = '# comment\nhostname="old"\nsshd_enable="YES"\nhostname=older\n';
    const out = rcConfWith(text, [['hostname', 'new.example.org']]);
    assert.equal(out, '# comment\nsshd_enable="YES"\nhostname="new.example.org"\n');
    assert.equal(rcConfValue(out, 'hostname'), 'new.example.org');
    assert.throws(
      () => rcConfWith('', [['hostname', 'x"; rm -rf /']]),
      (e: Error) => e instanceof RcConfError && /value for hostname contains a quote/.test(e.message),
    );
  });
});

const nicModel = (index: number, fields: Partial<NicModel>): NicModel => ({
  index,
  mac: `aa:00:00:00:00:0${index}`,
  name: `snf${index}`,
  source: 'network',
  ...fields,
});
const STATIC = nicModel(0, {
  ipv4: { method: 'static', address: '192.0.2.10', prefix: 24, netmask: '255.255.255.0', gateway: '192.0.2.1' },
  ipv6: 'slaac',
});
const DHCP = nicModel(1, { ipv4: { method: 'dhcp' }, ipv6: 'dhcpv6' });
const BARE = nicModel(2, {});

describe('BSD network renderers', () => {
  it('names interfaces by driver per frontend type and per-driver index', () => {
    const types = new Map<number, string | undefined>([
      [0, 'paravirtual'],
      [1, 'e1000'],
      [2, undefined],
    ]);
    assert.deepEqual(
      bsdInterfaces('freebsd', [STATIC, DHCP, BARE], types).map((n) => n.ifname),
      ['vtnet0', 'em0', 'vtnet1'],
    );
    assert.deepEqual(
      bsdInterfaces('openbsd', [STATIC, DHCP, BARE], types).map((n) => n.ifname),
      ['vio0', 'em0', 'vio1'],
    );
    assert.deepEqual(
      bsdInterfaces('netbsd', [STATIC, DHCP, BARE], types).map((n) => n.ifname),
      ['vioif0', 'wm0', 'vioif1'],
    );
    const rtl = new Map<number, string | undefined>([[0, 'rtl8139']]);
    assert.deepEqual(
      ['freebsd', 'openbsd', 'netbsd'].map((f) => bsdInterfaces(f as 'freebsd', [STATIC], rtl)[0]?.ifname),
      ['rl0', 'rl0', 're0'],
    );
    assert.throws(
      () => bsdInterfaces('openbsd', [STATIC], new Map([[0, 'virtio-net']])),
      (e: Error) =>
        e instanceof BsdNetworkError && /NIC_0_FRONTEND_TYPE virtio-net has no openbsd driver/.test(e.message),
    );
  });

  const named = (names: string[]): BsdNic[] =>
    [STATIC, DHCP, BARE].map((nic, i) => ({ nic, ifname: names[i] as string }));

  it('FreeBSD: rc.conf lines, old interface lines replaced', () => {
    const out = renderFreebsd(
      named(['vtnet0', 'vtnet1', 'vtnet2']),
      'hostname="h"\nifconfig_em0="DHCP"\ndefaultrouter="10.0.0.1"\nsshd_enable="YES"\n',
    );
    assert.equal(
      out.rcConf,
      [
        'hostname="h"',
        'sshd_enable="YES"',
        'ifconfig_vtnet0="inet 192.0.2.10 netmask 255.255.255.0"',
        'ifconfig_vtnet0_ipv6="inet6 accept_rtadv"',
        'ifconfig_vtnet1="DHCP"',
        'ifconfig_vtnet1_ipv6="inet6 accept_rtadv"',
        'ifconfig_vtnet2="up"',
        'defaultrouter="192.0.2.1"',
        'rtsold_enable="YES"',
        'dhcp6c_enable="YES"',
        'dhcp6c_interfaces="vtnet1"',
        '',
      ].join('\n'),
    );
    assert.deepEqual(out.files, []);
    assert.equal(out.warnings.length, 1);
  });

  it('OpenBSD: hostname.<if> files and mygate', () => {
    const out = renderOpenbsd(named(['vio0', 'vio1', 'vio2']));
    const H = "# Written by snf-image's ConfigureNetwork task";
    assert.deepEqual(out.files, [
      {
        path: '/etc/hostname.vio0',
        content: `${H}\ninet 192.0.2.10 255.255.255.0 NONE\ninet6 autoconf\nup\n`,
        mode: 0o640,
      },
      { path: '/etc/hostname.vio1', content: `${H}\ninet autoconf\ninet6 autoconf\nup\n`, mode: 0o640 },
      { path: '/etc/hostname.vio2', content: `${H}\nup\n`, mode: 0o640 },
      { path: '/etc/mygate', content: '192.0.2.1\n', mode: 0o644 },
    ]);
    assert.match(out.warnings[0] ?? '', /vio1: OpenBSD has no DHCPv6 client/);
  });

  it('NetBSD: ifconfig.<if> files and rc.conf', () => {
    const out = renderNetbsd(named(['vioif0', 'vioif1', 'vioif2']), 'hostname=x\n');
    const H = "# Written by snf-image's ConfigureNetwork task";
    assert.deepEqual(
      out.files.map((f) => [f.path, f.content]),
      [
        ['/etc/ifconfig.vioif0', `${H}\nup\ninet 192.0.2.10 netmask 255.255.255.0\n`],
        ['/etc/ifconfig.vioif1', `${H}\nup\n!dhcpcd -q -4 $int\n`],
        ['/etc/ifconfig.vioif2', `${H}\nup\n`],
      ],
    );
    assert.equal(out.rcConf, 'hostname=x\ndefaultroute="192.0.2.1"\nip6mode="autohost"\n');
  });
});

function guest(): { root: string; fs: GuestFs } {
  const root = mkdtempSync(join(tmpdir(), 'bsd-guest-'));
  mkdirSync(join(root, 'etc/ssh'), { recursive: true });
  writeFileSync(join(root, 'etc/rc.conf'), 'hostname="template"\nsshd_enable="YES"\n');
  writeFileSync(join(root, 'etc/master.passwd'), 'root:*:0:0::0:0:Charlie &:/root:/bin/sh\n', { mode: 0o600 });
  writeFileSync(join(root, 'etc/passwd'), 'root:*:0:0:Charlie &:/root:/bin/sh\n');
  writeFileSync(join(root, 'etc/spwd.db'), 'old');
  for (const k of ['ssh_host_rsa_key', 'ssh_host_rsa_key.pub', 'ssh_host_ed25519_key'])
    writeFileSync(join(root, 'etc/ssh', k), 'k');
  writeFileSync(join(root, 'etc/ssh/sshd_config'), 'HostKey /etc/ssh/custom_key\n');
  writeFileSync(join(root, 'etc/ssh/custom_key'), 'k');
  writeFileSync(join(root, 'etc/ssh/moduli'), 'm');
  return { root, fs: new GuestFs(root) };
}

function context(
  target: string,
  family: string,
  extra: Partial<ConfigDocument> = {},
): HelperContext & { infos: string[]; warnings: string[] } {
  const infos: string[] = [];
  const warnings: string[] = [];
  const config = {
    hostname: 'vm1.example.org',
    nics: [],
    network: { dhcpTags: ['dhcp'], statefulDhcpv6Tags: [], statelessDhcpv6Tags: [], defaultNicConfig: 'dhcp' },
    secrets: {},
    ...extra,
  } as unknown as ConfigDocument;
  return {
    config,
    disk: '/dev/vdb',
    disks: ['/dev/vdb'],
    properties: { OSFAMILY: family, USERS: 'root' },
    target,
    mounts: [],
    warn: (m) => warnings.push(m),
    info: (m) => infos.push(m),
    infos,
    warnings,
  };
}

describe('BSD tasks on guest directories (file by file)', () => {
  it('AssignHostname: rc.conf (FreeBSD), /etc/myname (OpenBSD), both (NetBSD)', async () => {
    for (const [family, rc, myname] of [
      ['freebsd', true, false],
      ['openbsd', false, true],
      ['netbsd', true, true],
    ] as const) {
      const { root, fs } = guest();
      await adapterFor(family).assignHostname(context(root, family), fs);
      assert.equal(
        readFileSync(join(root, 'etc/rc.conf'), 'utf8'),
        rc ? 'sshd_enable="YES"\nhostname="vm1.example.org"\n' : 'hostname="template"\nsshd_enable="YES"\n',
        family,
      );
      assert.equal(
        existsSync(join(root, 'etc/myname')) && readFileSync(join(root, 'etc/myname'), 'utf8'),
        myname ? 'vm1.example.org\n' : false,
        family,
      );
      rmSync(root, { recursive: true });
    }
    const { root, fs } = guest();
    assert.throws(
      () => assignBsdHostname(fs, 'openbsd', 'bad name;reboot'),
      (e: Error) => e instanceof TaskError && /hostname bad name;reboot is not a valid host name/.test(e.message),
    );
    rmSync(root, { recursive: true });
  });

  it('ChangePassword: master.passwd, spwd.db removed, pwd_mkdb hook, mode 0600', () => {
    const { root, fs } = guest();
    writeFileSync(join(root, 'etc/spwd.db.tmp'), 'x');
    changeBsdPasswords(fs, 'netbsd', ['root'], '$2a$08$abcdefghijklmnopqrstuu5Q2q4m2u6y1gxDk4zqkq9vN0u3kC7S');
    assert.equal(
      readFileSync(join(root, 'etc/master.passwd'), 'utf8'),
      'root:$2a$08$abcdefghijklmnopqrstuu5Q2q4m2u6y1gxDk4zqkq9vN0u3kC7S:0:0::0:0:Charlie &:/root:/bin/sh\n',
    );
    assert.equal(statSync(join(root, 'etc/master.passwd')).mode & 0o777, 0o600);
    assert.equal(existsSync(join(root, 'etc/spwd.db')), false);
    assert.equal(existsSync(join(root, 'etc/spwd.db.tmp')), false);
    assert.equal(existsSync(join(root, PWD_MKDB_MARKER.slice(1))), true);
    assert.match(readFileSync(join(root, 'etc/rc.local'), 'utf8'), /pwd_mkdb -p \/etc\/master.passwd/);
    assert.equal(statSync(join(root, 'etc/rc.local')).mode & 0o777, 0o755);
    rmSync(root, { recursive: true });
  });

  it('ChangePassword hashes with the family default through mkpasswd (stdin), never echoing the password', async (t) => {
    if (spawnSync('mkpasswd', ['--version']).error) return t.skip('mkpasswd (package whois) is not installed');
    for (const [family, prefix] of [
      ['freebsd', '$6$'],
      ['openbsd', '$2b$'],
      ['netbsd', '$2a$'],
    ] as const) {
      const { root, fs } = guest();
      const ctx = context(root, family, { secrets: { password: 'pässwörd' } } as Partial<ConfigDocument>);
      await changeBsdPassword(ctx, fs);
      const hash = readFileSync(join(root, 'etc/master.passwd'), 'utf8').split(':')[1] as string;
      assert.ok(hash.startsWith(prefix), `${family}: ${hash.slice(0, 4)}`);
      assert.ok(![...ctx.infos, ...ctx.warnings].some((m) => m.includes('pässwörd')));
      rmSync(root, { recursive: true });
    }
  });

  it('DeleteSSHKeys: host keys and HostKey files gone, other files kept', () => {
    const { root, fs } = guest();
    assert.deepEqual(deleteBsdSshKeys(fs), [
      '/etc/ssh/custom_key',
      '/etc/ssh/ssh_host_ed25519_key',
      '/etc/ssh/ssh_host_rsa_key',
      '/etc/ssh/ssh_host_rsa_key.pub',
    ]);
    assert.equal(existsSync(join(root, 'etc/ssh/moduli')), true);
    assert.equal(existsSync(join(root, 'etc/ssh/sshd_config')), true);
    rmSync(root, { recursive: true });
  });

  it('ConfigureNetwork through the shared model (OpenBSD, e1000 + virtio)', () => {
    const { root, fs } = guest();
    const nics = [
      {
        index: 0,
        mac: 'aa:00:00:00:00:01',
        ip: '192.0.2.10',
        frontendType: 'e1000',
        network: { tags: [], subnet: '192.0.2.0/24', gateway: '192.0.2.1' },
      },
      { index: 1, mac: 'aa:00:00:00:00:02', ip: '198.51.100.7', network: { tags: ['dhcp'] } },
    ];
    const ctx = context(root, 'openbsd', { nics } as Partial<ConfigDocument>);
    configureBsdNetwork(ctx, fs);
    assert.equal(
      readFileSync(join(root, 'etc/hostname.em0'), 'utf8'),
      "# Written by snf-image's ConfigureNetwork task\ninet 192.0.2.10 255.255.255.0 NONE\nup\n",
    );
    assert.equal(
      readFileSync(join(root, 'etc/hostname.vio0'), 'utf8'),
      "# Written by snf-image's ConfigureNetwork task\ninet autoconf\nup\n",
    );
    assert.equal(readFileSync(join(root, 'etc/mygate'), 'utf8'), '192.0.2.1\n');
    rmSync(root, { recursive: true });
  });

  it('the task table runs the BSD tasks it supports, and not the Linux-only ones', () => {
    const bsdTasks = TASKS.filter((t) => t.families.includes('openbsd')).map((t) => t.name);
    assert.deepEqual(bsdTasks, [
      'FixPartitionTable',
      'MountImage',
      'FilesystemResizeMounted',
      'AssignHostname',
      'ChangePassword',
      'ConfigureNetwork',
      'DeleteSSHKeys',
      'EnforcePersonality',
      'RunCustomTask',
      'UmountImage',
    ]);
    for (const family of ['freebsd', 'openbsd', 'netbsd'] as const) assert.equal(adapterFor(family).family, family);
  });
});

describe('UFS superblock detection on makefs images', () => {
  it('tells UFS2 from UFS1 (FFSv1, 44bsd) and rejects other data', (t) => {
    if (spawnSync('makefs', []).error) return t.skip('makefs (Debian package makefs) is not installed');
    const dir = mkdtempSync(join(tmpdir(), 'bsd-ufs-'));
    mkdirSync(join(dir, 'tree/etc'), { recursive: true });
    writeFileSync(join(dir, 'tree/etc/fstab'), '/dev/wd0a / ffs rw 1 1\n');
    for (const [version, expected] of [
      ['2', 'ufs2'],
      ['1', '44bsd'],
    ] as const) {
      const image = join(dir, `v${version}.img`);
      const r = spawnSync('makefs', ['-t', 'ffs', '-o', `version=${version}`, '-s', '16m', image, join(dir, 'tree')]);
      assert.equal(r.status, 0, r.stderr.toString());
      const head = readFileSync(image).subarray(0, 65536 + 4096);
      assert.equal(ufsTypeOf(head), expected);
      assert.equal(ufs2At64k(head), false, "makefs puts even UFS2's superblock at 8 KiB");
    }
    assert.equal(ufsTypeOf(Buffer.alloc(70_000)), undefined);
    rmSync(dir, { recursive: true });
  });

  it('reads the clean flag, fs_flags and FreeBSD check hashes, and turns the hashes off', (t) => {
    if (spawnSync('makefs', []).error) return t.skip('makefs (Debian package makefs) is not installed');
    const dir = mkdtempSync(join(tmpdir(), 'bsd-ufs-'));
    mkdirSync(join(dir, 'tree'));
    const image = join(dir, 'v1.img');
    assert.equal(
      spawnSync('makefs', ['-t', 'ffs', '-o', 'version=1', '-s', '16m', image, join(dir, 'tree')]).status,
      0,
    );
    const head = readFileSync(image).subarray(0, 65536 + 4096);
    const sb = readUfsSuperblock(head);
    assert.deepEqual(sb && { offset: sb.offset, type: sb.type, clean: sb.clean, metackhash: sb.metackhash }, {
      offset: 8192,
      type: '44bsd',
      clean: 1,
      metackhash: 0,
    });
    assert.equal(withoutCheckHashes(head, sb!), undefined, 'no check hashes: nothing to change');
    // As FreeBSD 12+ newfs leaves it: flags moved to fs_flags, FS_METACKHASH and SU+J set,
    // cylinder-group and inode hashes on, a superblock hash recorded.
    const hashed = Buffer.from(head);
    hashed.writeUInt8(hashed.readUInt8(8192 + 211) | 0x80, 8192 + 211);
    hashed.writeUInt32LE(0x200 | 0x8 | 0x2, 8192 + 1312);
    hashed.writeUInt32LE(0x7, 8192 + 1308);
    hashed.writeUInt32LE(0xdeadbeef, 8192 + 1304);
    const before = readUfsSuperblock(hashed)!;
    assert.deepEqual([before.flags, before.metackhash], [0x20a, 7]);
    const plain = withoutCheckHashes(hashed, before)!;
    assert.equal(plain.length, 2048);
    const after = readUfsSuperblock(Buffer.concat([hashed.subarray(0, 8192), plain, hashed.subarray(8192 + 2048)]))!;
    assert.deepEqual(
      [after.flags, after.metackhash, plain.readUInt32LE(1304)],
      [0xa, 0, 0],
      'hashes off, soft updates and journal flags kept',
    );
    assert.equal(after.clean, 1);
    assert.ok(plain.subarray(0, 1304).equals(hashed.subarray(8192, 8192 + 1304)), 'nothing else changed');
    rmSync(dir, { recursive: true });
  });
});
