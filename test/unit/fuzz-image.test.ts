/**
 * Fuzzing of what the host reads from an image and its neighbours: magic bytes, ext/NTFS
 * superblock sizes and the MBR made from them, qcow2/vmdk/vdi/vhdx header checks, a
 * SHA256SUMS sidecar from the image's server, and img_id itself.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { findInSums } from '../../src/image/checksum.ts';
import { ImageIdError, parseImageId } from '../../src/image/image-id.ts';
import { detect, filesystemSize, MAGIC_BYTES } from '../../src/image/magic.ts';
import { PREFIX_BYTES, synthesizePrefix } from '../../src/image/mbr.ts';
import { checkHeader, type QemuFormat } from '../../src/image/qemu-img.ts';
import { UserError } from '../../src/util/errors.ts';
import {
  applyMutations,
  assertLinearTime,
  fuzz,
  hostileText,
  mutationsOf,
  parseOrRefuse,
  repeat,
  repeatShapes,
} from '../support/fuzz.ts';

/** An ext4 superblock as mke2fs writes it (the fields filesystemSize reads), in a 4 KiB head. */
function extHead(): Buffer {
  const head = Buffer.alloc(MAGIC_BYTES);
  head.writeUInt32LE(262144, 1024 + 4); // s_blocks_count_lo
  head.writeUInt32LE(2, 1024 + 24); // s_log_block_size: 4 KiB
  head.writeUInt16LE(0xef53, 1024 + 56); // s_magic
  head.writeUInt32LE(0x2c2, 1024 + 0x60); // s_feature_incompat: extents, 64bit, flex_bg
  head.writeUInt32LE(0, 1024 + 0x150); // s_blocks_count_hi
  return head;
}

/** An NTFS boot sector (bytes per sector, total sectors). */
function ntfsHead(): Buffer {
  const head = Buffer.alloc(MAGIC_BYTES);
  head.write('NTFS    ', 3, 'latin1');
  head.writeUInt16LE(512, 0x0b);
  head.writeBigUInt64LE(2097151n, 0x28);
  head.writeUInt16LE(0xaa55, 510);
  return head;
}

/** The header of a qcow2 v3 image without backing or data file. */
function qcow2Head(): Buffer {
  const head = Buffer.alloc(MAGIC_BYTES);
  head.set([0x51, 0x46, 0x49, 0xfb], 0);
  head.writeUInt32BE(3, 4);
  head.writeUInt32BE(16, 20); // cluster_bits
  head.writeBigUInt64BE(1n << 30n, 24); // size
  head.writeUInt32BE(104, 100); // header_length
  return head;
}

const BASES = { ext: extHead(), ntfs: ntfsHead(), qcow2: qcow2Head() } as const;
type Base = keyof typeof BASES;

/**
 * A head as a recipe (a valid base, then byte / 32-bit field mutations and a truncation),
 * so that a failure prints the few mutations, not 4 KiB of bytes.
 */
const mutatedHead = (...bases: Base[]) =>
  fc.record({ base: fc.constantFrom(...bases), change: mutationsOf(MAGIC_BYTES) });
const randomHead = fc.record({ random: fc.uint8Array({ maxLength: MAGIC_BYTES }) });
/** Field-level writes concentrate on the bytes a superblock parser reads. */
const FIELDS: Readonly<Record<Base, readonly number[]>> = {
  ext: [1024 + 4, 1024 + 24, 1024 + 0x60, 1024 + 0x150],
  ntfs: [0x0b, 0x28, 0x2c],
  qcow2: [4, 8, 12, 72, 76],
};
const fieldWrites = (base: Base) =>
  fc.record({
    base: fc.constant(base),
    writes: fc.array(
      fc.record({
        at: fc.constantFrom(...FIELDS[base]),
        value: fc.oneof(fc.nat(), fc.constantFrom(0, 1, 6, 7, 0x80, 0xffff, 0xffffffff)),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  });

type HeadRecipe =
  | { random: Uint8Array }
  | { base: Base; change: Parameters<typeof applyMutations>[1] }
  | { base: Base; writes: Array<{ at: number; value: number }> };

function build(recipe: HeadRecipe): Buffer {
  if ('random' in recipe) return Buffer.from(recipe.random);
  if ('change' in recipe) return applyMutations(BASES[recipe.base], recipe.change);
  const out = Buffer.from(BASES[recipe.base]);
  for (const w of recipe.writes) out.writeUInt32LE(w.value >>> 0, w.at);
  return out;
}

/** What deploy does with an ext/NTFS dump's head: its size, then the MBR in front of it. */
function prefixFor(head: Buffer, content: 'ext' | 'ntfs'): Buffer | undefined {
  const size = filesystemSize(head, content);
  if (size === undefined) return undefined;
  assert.ok(Number.isSafeInteger(size) && size >= 0, `filesystem size ${size} is not a whole number of bytes`);
  return synthesizePrefix(size, content, undefined);
}

describe('fuzz: image magic and superblocks (src/image/magic.ts, src/image/mbr.ts)', () => {
  it('detect() names any head without throwing', () => {
    fuzz(
      'magic detect',
      fc.oneof(randomHead, mutatedHead('qcow2', 'ext', 'ntfs')),
      (recipe) => {
        const found = detect(build(recipe));
        assert.ok(['compressed', 'container', 'raw'].includes(found.kind));
      },
      1000,
    );
  });

  it('an ext or NTFS superblock gives a size and a 1 MiB MBR prefix, or a one-line UserError', () => {
    const recipe = fc.oneof(fieldWrites('ext'), fieldWrites('ntfs'), mutatedHead('ext', 'ntfs'), randomHead);
    fuzz(
      'superblock size + MBR',
      fc.tuple(recipe, fc.constantFrom<'ext' | 'ntfs'>('ext', 'ntfs')),
      ([r, content]) => {
        const prefix = parseOrRefuse(
          () => prefixFor(build(r), 'base' in r && r.base !== 'qcow2' ? r.base : content),
          [UserError],
        );
        if (prefix) assert.equal(prefix.length, PREFIX_BYTES);
      },
      1000,
    );
  });
});

describe('fuzz: virtual-disk headers (src/image/qemu-img.ts)', () => {
  it('checkHeader accepts or refuses any head with a one-line UserError', () => {
    const format = fc.constantFrom<QemuFormat>('qcow2', 'vmdk', 'vdi', 'vhdx');
    fuzz(
      'qemu-img header check',
      fc.tuple(fc.oneof(randomHead, mutatedHead('qcow2'), fieldWrites('qcow2')), format),
      ([recipe, declared]) => {
        parseOrRefuse(() => checkHeader(build(recipe), declared), [UserError]);
      },
      1000,
    );
  });
});

describe('fuzz: SHA256SUMS sidecar (src/image/checksum.ts)', () => {
  const algorithm = fc.constantFrom<'sha256' | 'sha512'>('sha256', 'sha512');
  const sumsLine = fc
    .tuple(
      fc.stringMatching(/^[0-9a-f]{60,130}$/),
      fc.constantFrom(' ', '  ', ' *', '\t'),
      fc.constantFrom('image.img', 'x/image.img', 'other'),
    )
    .map((p) => p.join(''));
  const sums = fc.oneof(
    hostileText(),
    fc.array(fc.oneof(sumsLine, hostileText(40)), { maxLength: 10 }).map((l) => l.join('\n')),
  );

  it('findInSums returns a digest of the right length or nothing', () => {
    fuzz(
      'SHA256SUMS',
      fc.tuple(sums, algorithm),
      ([text, alg]) => {
        const hex = findInSums(text, 'image.img', alg);
        if (hex !== undefined) assert.match(hex, alg === 'sha256' ? /^[0-9a-f]{64}$/ : /^[0-9a-f]{128}$/);
      },
      500,
    );
  });

  it('findInSums takes time linear in the text', () => {
    fuzz(
      'SHA256SUMS time',
      fc.tuple(repeatShapes('*', ['0'.repeat(64), `${'0'.repeat(64)}  image.img`, 'a ']), algorithm),
      ([shape, alg]) => {
        assertLinearTime(
          (n) => repeat(shape, n),
          (text) => findInSums(text, 'image.img', alg),
        );
      },
      100,
    );
  });
});

describe('fuzz: img_id (src/image/image-id.ts)', () => {
  it('parseImageId gives a source or a one-line ImageIdError, and local paths stay inside IMAGE_DIR', () => {
    const id = fc.oneof(
      hostileText(100),
      fc
        .tuple(
          fc.constantFrom('local://', 'file://', 'http://', 'https://', 'ftp://', 'ftps://', 'gopher:', '', '/', '../'),
          hostileText(60),
        )
        .map(([a, b]) => a + b),
    );
    fuzz(
      'img_id',
      id,
      (value) => {
        const parsed = parseOrRefuse(() => parseImageId(value, '/srv/images'), [ImageIdError]);
        if (parsed?.kind === 'local') assert.ok(parsed.path.startsWith('/srv/images/'), parsed.path);
      },
      1000,
    );
  });
});
