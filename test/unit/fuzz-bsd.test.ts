/**
 * Fuzzing of what the helper reads from a BSD image: the disklabel (parsed and grown), fstab
 * device names, the UFS superblock, master.passwd, rc.conf, and fstab itself.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TaskError } from '../../helper/exec.ts';
import { BsdDeviceError, parseBsdDevice } from '../../helper/bsd/devices.ts';
import {
  buildDisklabel,
  checksum,
  DisklabelError,
  FS_BSDFFS,
  FS_SWAP,
  growDisklabel,
  labelProblems,
  lastLabelPartition,
  parseDisklabel,
  usedPartitions,
  type LabelSpec,
} from '../../helper/bsd/disklabel.ts';
import { masterPasswdWithPassword, MasterPasswdError } from '../../helper/bsd/master-passwd.ts';
import type { BsdFamily } from '../../helper/bsd/partition-types.ts';
import { rcConfValue, rcConfWith, RcConfError, rcConfWithout } from '../../helper/bsd/rc-conf.ts';
import { readUfsSuperblock, withoutCheckHashes } from '../../helper/bsd/ufs.ts';
import { parseFstab } from '../../helper/tasks/mount.ts';
import {
  applyMutations,
  assertLinearTime,
  fuzz,
  hostileText,
  linesOf,
  mutationsOf,
  parseOrRefuse,
  repeat,
  repeatShapes,
} from '../support/fuzz.ts';

const DISK = 2_097_152;
const family = fc.constantFrom<BsdFamily>('freebsd', 'openbsd', 'netbsd');

/** Labels as each family writes them, built by the module's own builder. */
const LABELS: Record<BsdFamily, LabelSpec> = {
  freebsd: {
    flavour: 'freebsd',
    sliceStart: 63,
    sliceSize: 100_000,
    diskSectors: DISK,
    partitions: [
      { letter: 'a', start: 79, size: 90_000, fstype: FS_BSDFFS },
      { letter: 'b', start: 90_079, size: 9_984, fstype: FS_SWAP },
    ],
  },
  openbsd: {
    flavour: 'openbsd',
    sliceStart: 64,
    sliceSize: 200_000,
    diskSectors: DISK,
    duid: '3eb7f9da875cb9ee',
    partitions: [
      { letter: 'a', start: 64, size: 150_000, fstype: FS_BSDFFS },
      { letter: 'b', start: 150_064, size: 49_936, fstype: FS_SWAP },
    ],
  },
  netbsd: {
    flavour: 'netbsd',
    sliceStart: 63,
    sliceSize: 300_000,
    diskSectors: DISK,
    partitions: [
      { letter: 'a', start: 63, size: 200_000, fstype: FS_BSDFFS },
      { letter: 'e', start: 200_063, size: 99_937, fstype: FS_BSDFFS },
    ],
  },
};

/**
 * A label sector as a recipe: a valid label mutated in its header and partition table,
 * with the checksum made right again most of the time so that the parser looks further.
 */
const labelRecipe = fc.record({
  base: family,
  change: mutationsOf(512),
  fields: fc.array(
    fc.record({
      at: fc.oneof(fc.constantFrom(40, 60, 112, 138), fc.integer({ min: 148, max: 148 + 22 * 16 - 4 })),
      value: fc.oneof(fc.nat(), fc.constantFrom(0, 1, 2, 3, 22, 23, 0xffff, 0xffffffff)),
    }),
    { maxLength: 6 },
  ),
  fixChecksum: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 2 }),
});
type LabelRecipe = typeof labelRecipe extends fc.Arbitrary<infer T> ? T : never;

function labelSector(r: LabelRecipe): Buffer {
  const sector = applyMutations(buildDisklabel(LABELS[r.base]), r.change);
  for (const f of r.fields) if (f.at + 4 <= sector.length) sector.writeUInt32LE(f.value >>> 0, f.at);
  if (r.fixChecksum && sector.length >= 512) {
    const n = sector.readUInt16LE(138);
    if (n <= 22) sector.writeUInt16LE(checksum(sector, n), 136);
  }
  return sector;
}

/** MBR slices: 32-bit start and size; the disk is at least as large as the slice. */
const slice = fc.record({
  start: fc.oneof(fc.nat({ max: 1_000_000 }), fc.nat({ max: 0xffffffff })),
  size: fc.oneof(fc.nat({ max: 4_000_000 }), fc.nat({ max: 0xffffffff })),
  spare: fc.oneof(fc.nat({ max: 1000 }), fc.nat({ max: 2 ** 40 })),
});

describe('fuzz: BSD disklabel (helper/bsd/disklabel.ts)', () => {
  it('parses any label sector or refuses it with a one-line DisklabelError', () => {
    fuzz(
      'disklabel parse',
      fc.tuple(labelRecipe, family),
      ([r, flavour]) => {
        const label = parseOrRefuse(() => parseDisklabel(labelSector(r), flavour), [DisklabelError]);
        if (!label) return;
        assert.ok(label.partitions.length >= 3 && label.partitions.length <= 22);
        for (const p of label.partitions)
          assert.ok(Number.isSafeInteger(p.offset) && p.offset >= 0 && Number.isSafeInteger(p.size) && p.size >= 0);
      },
      1000,
    );
  });

  it('grows any parsed label into a valid label inside its slice, or refuses with a one-line DisklabelError', () => {
    fuzz(
      'disklabel grow',
      fc.tuple(labelRecipe, slice),
      ([r, s]) => {
        const sector = labelSector(r);
        const flavour = r.base;
        const disk = s.start + s.size + s.spare;
        const label = parseOrRefuse(() => parseDisklabel(sector, flavour), [DisklabelError]);
        if (!label) return;
        labelProblems(label, s.start, s.size);
        lastLabelPartition(label, s.start);
        const grown = parseOrRefuse(() => growDisklabel(sector, flavour, s.start, s.size, disk), [DisklabelError]);
        if (!grown) return;
        const again = parseDisklabel(grown.sector, flavour);
        assert.deepEqual(labelProblems(again, s.start, s.size), []);
        for (const p of usedPartitions(again, s.start)) assert.ok(p.start + p.size <= s.start + s.size);
      },
      1000,
    );
  });
});

describe('fuzz: BSD fstab device names (helper/bsd/devices.ts)', () => {
  const source = fc.oneof(
    hostileText(40),
    fc
      .tuple(
        fc.constantFrom(
          '/dev/wd',
          '/dev/rsd',
          '/dev/ada',
          '/dev/vtbd',
          '/dev/gpt/',
          '3eb7f9da875cb9ee',
          '0123456789ABCDEF',
          '/dev/da',
        ),
        fc.stringMatching(/^[0-9]{0,25}[a-z]?[0-9]{0,25}[.a-z]{0,2}$/),
      )
      .map(([a, b]) => a + b),
  );
  it('maps any fstab source to a letter or a GPT number, or refuses with a one-line BsdDeviceError', () => {
    fuzz(
      'BSD device names',
      fc.tuple(source, fc.constantFrom('', '3eb7f9da875cb9ee')),
      ([s, duid]) => {
        const device = parseOrRefuse(() => parseBsdDevice(s, duid), [BsdDeviceError]);
        if (device?.kind === 'letter') assert.match(device.letter, /^[a-p]$/);
        if (device?.kind === 'gpt')
          assert.ok(Number.isSafeInteger(device.number) && device.number >= 0, `GPT partition number ${device.number}`);
      },
      1000,
    );
  });
});

/** A UFS2 superblock at 64 KiB (FreeBSD's newfs) or a UFS1 one at 8 KiB, in a 68 KiB head. */
function ufsHead(type: 'ufs2' | 'ufs1', bigEndian: boolean, checkHashes: boolean): Buffer {
  const head = Buffer.alloc(65536 + 4096);
  const at = type === 'ufs2' ? 65536 : 8192;
  const u32 = (off: number, v: number) =>
    bigEndian ? head.writeUInt32BE(v, at + off) : head.writeUInt32LE(v, at + off);
  u32(1372, type === 'ufs2' ? 0x19540119 : 0x011954);
  head[at + 209] = 1; // fs_clean
  head[at + 211] = 0x80; // fs_old_flags: FS_FLAGS_UPDATED
  u32(1312, checkHashes ? 0x200 : 0); // fs_flags
  u32(1308, checkHashes ? 0x1f : 0); // fs_metackhash
  return head;
}

describe('fuzz: UFS superblock (helper/bsd/ufs.ts)', () => {
  const recipe = fc.record({
    type: fc.constantFrom<'ufs2' | 'ufs1'>('ufs2', 'ufs1'),
    bigEndian: fc.boolean(),
    checkHashes: fc.boolean(),
    writes: fc.array(
      fc.record({
        at: fc.oneof(
          fc.constantFrom(8192, 65536).chain((base) => fc.integer({ min: base, max: base + 1400 })),
          fc.nat({ max: 65536 + 4095 }),
        ),
        value: fc.nat({ max: 255 }),
      }),
      { maxLength: 12 },
    ),
    truncateTo: fc.option(
      fc.oneof(fc.nat({ max: 65536 + 4096 }), fc.constantFrom(8192 + 1376, 65536 + 1376, 65536 + 1375, 8192 + 2047)),
      { freq: 3 },
    ),
  });
  it('reads any partition head as a superblock or as none, and turns check hashes off within the superblock', () => {
    fuzz(
      'UFS superblock',
      recipe,
      (r) => {
        const full = ufsHead(r.type, r.bigEndian, r.checkHashes);
        for (const w of r.writes) full[w.at] = w.value;
        const head = r.truncateTo === null ? full : full.subarray(0, r.truncateTo);
        const sb = parseOrRefuse(() => readUfsSuperblock(head), [TaskError]);
        if (!sb) return;
        assert.ok(sb.offset === 8192 || sb.offset === 65536);
        const plain = parseOrRefuse(() => withoutCheckHashes(head, sb), [TaskError]);
        if (plain) assert.ok(plain.length <= 2048);
      },
      500,
    );
  });
});

describe('fuzz: master.passwd (helper/bsd/master-passwd.ts)', () => {
  const master = fc.oneof(hostileText(300), linesOf(['root', 'user', ':', '*', '$2b$', '0', '\n', '#'], 10));
  it('edits any master.passwd or refuses with a one-line MasterPasswdError', () => {
    fuzz(
      'master.passwd',
      fc.tuple(master, fc.subarray(['root', 'user', 'toor']), fc.constantFrom('$2b$10$abc', 'a:b', '$6$x\ny')),
      ([text, users, hash]) => {
        const out = parseOrRefuse(() => masterPasswdWithPassword(text, users, hash), [MasterPasswdError]);
        if (out !== undefined) assert.equal(out.split('\n').length, text.split('\n').length);
      },
      500,
    );
  });
  it('takes time linear in the file', () => {
    fuzz(
      'master.passwd time',
      repeatShapes(':*$', ['root:', 'root:*:0:0::0:0:x:/root:/bin/sh\n']),
      (shape) => {
        assertLinearTime(
          (n) => repeat(shape, n),
          (text) => masterPasswdWithPassword(text, ['root'], '$2b$10$abc'),
        );
      },
      60,
    );
  });
});

describe('fuzz: rc.conf (helper/bsd/rc-conf.ts)', () => {
  const rcConf = fc.oneof(
    hostileText(300),
    linesOf(['hostname=', '"', "'", 'ifconfig_vtnet0=', '#', ' ', '\t', '=', 'x', '\n'], 12),
  );
  const assignments = fc.array(
    fc.tuple(
      fc.oneof(fc.constantFrom('hostname', 'growfs_enable', 'ifconfig_em0'), fc.string({ maxLength: 8 })),
      fc.oneof(fc.constantFrom('YES', 'vm1', ''), hostileText(10)),
    ),
    { maxLength: 4 },
  );
  it('sets, removes and reads assignments in any rc.conf, or refuses with a one-line RcConfError', () => {
    fuzz(
      'rc.conf',
      fc.tuple(rcConf, assignments),
      ([text, values]) => {
        const out = parseOrRefuse(() => rcConfWith(text, values), [RcConfError]);
        if (out !== undefined)
          for (const [name, value] of values)
            if (values.findLast(([n]) => n === name)?.[1] === value) assert.equal(rcConfValue(out, name), value);
        rcConfWithout(text, (n) => n.startsWith('ifconfig'));
      },
      500,
    );
  });
  it('takes time linear in the file', () => {
    fuzz(
      'rc.conf time',
      repeatShapes('#"\'', ['hostname=', 'hostname="', 'a=b']),
      (shape) => {
        assertLinearTime(
          (n) => repeat(shape, n),
          (text) => {
            rcConfValue(text, 'hostname');
            rcConfWith(text, [['hostname', 'vm1']]);
          },
        );
      },
      100,
    );
  });
});

describe('fuzz: fstab (helper/tasks/mount.ts)', () => {
  const fstab = fc.oneof(
    hostileText(300),
    linesOf(
      ['UUID=', '/dev/sda1', '/', '/boot', 'ext4', 'ffs', 'defaults', 'noauto', '\\040', '#', ' ', '\t', '0 1'],
      12,
    ),
  );
  it('reads any fstab into entries with a source, a mount point and a type', () => {
    fuzz(
      'fstab',
      fstab,
      (text) => {
        for (const e of parseFstab(text))
          assert.ok(e.source !== '' && e.mountPoint !== '' && e.type !== '' && !/\s/.test(e.source));
      },
      500,
    );
  });
  it('takes time linear in the file', () => {
    fuzz(
      'fstab time',
      repeatShapes('#\\', ['/dev/sda1 / ext4', 'UUID=x']),
      (shape) => {
        assertLinearTime(
          (n) => repeat(shape, n),
          (text) => parseFstab(text),
        );
      },
      60,
    );
  });
});
