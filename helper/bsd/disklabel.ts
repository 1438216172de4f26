/**
 * The BSD disklabel inside an MBR slice (sector 1 of the slice on i386/amd64), as FreeBSD,
 * OpenBSD and NetBSD write it: parsing, the letter → disk sector mapping, growing the last
 * partition to the end of a grown slice, and the checksum. Pure functions over bytes.
 *
 * Layout (little-endian): d_magic @0, d_secsize @40, d_nsectors @44, d_ntracks @48,
 * d_ncylinders @52, d_secpercyl @56, d_secperunit @60, d_magic2 @132, d_checksum @136,
 * d_npartitions @138, partitions @148, 16 bytes each: p_size @0, p_offset @4, p_fstype @12.
 * OpenBSD adds d_uid (the DUID, 8 bytes) @64, d_bstarth/d_bendh @76/78, d_bstart/d_bend
 * @80/84, d_secperunith @112 and, per partition, p_offseth/p_sizeh @8/10 (48-bit sectors).
 * Offsets are disk sectors on OpenBSD and NetBSD; FreeBSD's are relative to the raw
 * partition 'c' (whose p_offset is 0 in labels FreeBSD writes today, the slice start in old ones).
 */
import type { BsdFamily } from './partition-types.ts';

const DISKLABEL_MAGIC = 0x82564557;
/** The label's byte offset inside its slice. */
export const LABEL_OFFSET = 512;
const PARTITIONS_AT = 148;
const PARTITION_SIZE = 16;
/** Labels hold at most this many partitions in one 512-byte sector. */
const MAX_PARTITIONS = 22;

const FS_UNUSED = 0;
export const FS_SWAP = 1;
export const FS_BSDFFS = 7;

export class DisklabelError extends Error {}

export interface LabelPartition {
  letter: string;
  /** Sector as stored in the label (see flavour rules above). */
  offset: number;
  size: number;
  fstype: number;
}

export interface Disklabel {
  flavour: BsdFamily;
  secsize: number;
  secperunit: number;
  /** OpenBSD's disklabel UID as OpenBSD prints it (16 hex digits), '' when not OpenBSD or zero. */
  duid: string;
  partitions: LabelPartition[];
}

function letterOf(index: number): string {
  return String.fromCharCode(97 + index);
}

/** The raw partitions that describe the slice or disk, not a filesystem. */
function rawLetters(flavour: BsdFamily): readonly string[] {
  return flavour === 'netbsd' ? ['c', 'd'] : ['c'];
}

export function checksum(sector: Buffer, npartitions: number): number {
  const end = PARTITIONS_AT + npartitions * PARTITION_SIZE;
  let sum = 0;
  for (let i = 0; i < end; i += 2) sum ^= i === 136 ? 0 : sector.readUInt16LE(i);
  return sum;
}

function high16(value: number): number {
  return Math.floor(value / 0x1_0000_0000);
}

/** Parses the label sector (512 bytes from LABEL_OFFSET in the slice); errors name what is wrong. */
export function parseDisklabel(sector: Buffer, flavour: BsdFamily): Disklabel {
  if (sector.length < 512) throw new DisklabelError(`disklabel sector is ${sector.length} bytes, not 512`);
  if (sector.readUInt32LE(0) !== DISKLABEL_MAGIC || sector.readUInt32LE(132) !== DISKLABEL_MAGIC) {
    throw new DisklabelError('no BSD disklabel in the slice (magic 0x82564557 missing at sector 1)');
  }
  const npartitions = sector.readUInt16LE(138);
  if (npartitions < 3 || npartitions > MAX_PARTITIONS)
    throw new DisklabelError(`disklabel has ${npartitions} partitions (must be 3 to ${MAX_PARTITIONS})`);
  if (checksum(sector, npartitions) !== sector.readUInt16LE(136))
    throw new DisklabelError('disklabel checksum mismatch: the label is corrupted');
  const secsize = sector.readUInt32LE(40);
  if (secsize !== 512) throw new DisklabelError(`disklabel sector size ${secsize} is not supported (512 only)`);
  const openbsd = flavour === 'openbsd';
  const partitions: LabelPartition[] = [];
  for (let i = 0; i < npartitions; i++) {
    const at = PARTITIONS_AT + i * PARTITION_SIZE;
    const size = sector.readUInt32LE(at) + (openbsd ? sector.readUInt16LE(at + 10) * 0x1_0000_0000 : 0);
    const offset = sector.readUInt32LE(at + 4) + (openbsd ? sector.readUInt16LE(at + 8) * 0x1_0000_0000 : 0);
    partitions.push({ letter: letterOf(i), offset, size, fstype: sector.readUInt8(at + 12) });
  }
  const uid = openbsd ? sector.subarray(64, 72) : Buffer.alloc(8);
  const secperunit = sector.readUInt32LE(60) + (openbsd ? sector.readUInt16LE(112) * 0x1_0000_0000 : 0);
  return { flavour, secsize, secperunit, duid: uid.every((b) => b === 0) ? '' : uid.toString('hex'), partitions };
}

/** Where a label partition starts on the disk, given the start sector of its slice. */
function absoluteStart(label: Disklabel, partition: LabelPartition, sliceStart: number): number {
  if (label.flavour !== 'freebsd') return partition.offset;
  const raw = label.partitions.find((p) => p.letter === 'c');
  return sliceStart + partition.offset - (raw?.offset ?? 0);
}

/** The partitions that hold something (not raw, not empty), with disk start sectors. */
export function usedPartitions(label: Disklabel, sliceStart: number): Array<LabelPartition & { start: number }> {
  const raw = rawLetters(label.flavour);
  return label.partitions
    .filter((p) => p.size > 0 && p.fstype !== FS_UNUSED && !raw.includes(p.letter))
    .map((p) => ({ ...p, start: absoluteStart(label, p, sliceStart) }));
}

/** Every used partition must lie inside its slice: a label pointing outside is refused. */
export function labelProblems(label: Disklabel, sliceStart: number, sliceSize: number): string[] {
  return usedPartitions(label, sliceStart)
    .filter((p) => p.start < sliceStart || p.start + p.size > sliceStart + sliceSize)
    .map(
      (p) =>
        `disklabel partition ${p.letter} (sectors ${p.start}+${p.size}) lies outside its slice (sectors ${sliceStart}+${sliceSize})`,
    );
}

/** The partition to grow: the used one that ends last. */
export function lastLabelPartition(
  label: Disklabel,
  sliceStart: number,
): (LabelPartition & { start: number }) | undefined {
  return usedPartitions(label, sliceStart)
    .sort((a, b) => a.start + a.size - (b.start + b.size))
    .at(-1);
}

function writeSize(sector: Buffer, index: number, size: number, openbsd: boolean): void {
  const at = PARTITIONS_AT + index * PARTITION_SIZE;
  sector.writeUInt32LE(size % 0x1_0000_0000, at);
  if (openbsd) sector.writeUInt16LE(high16(size), at + 10);
  else if (size >= 0x1_0000_0000)
    throw new DisklabelError(`partition of ${size} sectors does not fit a 32-bit disklabel`);
}

function writeOffset(sector: Buffer, index: number, offset: number, openbsd: boolean): void {
  const at = PARTITIONS_AT + index * PARTITION_SIZE;
  sector.writeUInt32LE(offset % 0x1_0000_0000, at + 4);
  if (openbsd) sector.writeUInt16LE(high16(offset), at + 8);
  else if (offset >= 0x1_0000_0000) throw new DisklabelError(`offset ${offset} does not fit a 32-bit disklabel`);
}

export interface GrowResult {
  sector: Buffer;
  /** The grown partition's letter, or undefined when the label has no used partition. */
  grown?: string;
  oldSize: number;
  newSize: number;
}

/**
 * The label after its slice grew to `sliceSize` sectors on a disk of `diskSectors`: the raw
 * partitions follow the slice (FreeBSD 'c', NetBSD 'c') or the disk (OpenBSD 'c', NetBSD
 * 'd'), d_secperunit and OpenBSD's usable area follow too, and the last used partition
 * ends at the end of the slice. The checksum is recomputed; the input is not changed.
 */
export function growDisklabel(
  input: Buffer,
  flavour: BsdFamily,
  sliceStart: number,
  sliceSize: number,
  diskSectors: number,
): GrowResult {
  const label = parseDisklabel(input, flavour);
  const problems = labelProblems(label, sliceStart, sliceSize);
  if (problems.length > 0) throw new DisklabelError(problems[0] as string);
  const sector = Buffer.from(input.subarray(0, 512));
  const openbsd = flavour === 'openbsd';
  const index = (letter: string) => letter.charCodeAt(0) - 97;
  const units = flavour === 'freebsd' ? sliceSize : diskSectors;
  sector.writeUInt32LE(units % 0x1_0000_0000, 60);
  if (openbsd) {
    sector.writeUInt16LE(high16(units), 112);
    const bend = sliceStart + sliceSize;
    sector.writeUInt32LE(bend % 0x1_0000_0000, 84);
    sector.writeUInt16LE(high16(bend), 78);
  } else if (units >= 0x1_0000_0000) {
    throw new DisklabelError(`a disk of ${units} sectors does not fit a 32-bit disklabel`);
  }
  if (flavour === 'freebsd') writeSize(sector, index('c'), sliceSize, false);
  if (flavour === 'openbsd') {
    writeOffset(sector, index('c'), 0, true);
    writeSize(sector, index('c'), diskSectors, true);
  }
  if (flavour === 'netbsd') {
    writeOffset(sector, index('c'), sliceStart, false);
    writeSize(sector, index('c'), sliceSize, false);
    writeOffset(sector, index('d'), 0, false);
    writeSize(sector, index('d'), diskSectors, false);
  }
  const last = lastLabelPartition(label, sliceStart);
  let newSize = last?.size ?? 0;
  if (last) {
    newSize = sliceStart + sliceSize - last.start;
    if (newSize < last.size)
      throw new DisklabelError(
        `the slice (sectors ${sliceStart}+${sliceSize}) is smaller than disklabel partition ${last.letter}`,
      );
    writeSize(sector, index(last.letter), newSize, openbsd);
  }
  sector.writeUInt16LE(checksum(sector, sector.readUInt16LE(138)), 136);
  return { sector, ...(last ? { grown: last.letter } : {}), oldSize: last?.size ?? 0, newSize };
}

export interface LabelSpec {
  flavour: BsdFamily;
  sliceStart: number;
  sliceSize: number;
  diskSectors: number;
  duid?: string;
  /** Partitions other than the raw ones, by letter. Offsets are disk sectors (FreeBSD: written relative to the slice). */
  partitions: Array<{ letter: string; start: number; size: number; fstype: number }>;
}

/** A label as each family's disklabel(8)/bsdlabel(8) writes it: for tests and fixtures. */
export function buildDisklabel(spec: LabelSpec): Buffer {
  const sector = Buffer.alloc(512);
  const openbsd = spec.flavour === 'openbsd';
  sector.writeUInt32LE(DISKLABEL_MAGIC, 0);
  sector.writeUInt32LE(DISKLABEL_MAGIC, 132);
  sector.writeUInt16LE(5, 4); // DTYPE_SCSI
  sector.write('SCSI disk', 8, 'latin1');
  sector.writeUInt32LE(512, 40);
  sector.writeUInt32LE(63, 44);
  sector.writeUInt32LE(255, 48);
  sector.writeUInt32LE(Math.floor(spec.diskSectors / (63 * 255)), 52);
  sector.writeUInt32LE(63 * 255, 56);
  const units = spec.flavour === 'freebsd' ? spec.sliceSize : spec.diskSectors;
  sector.writeUInt32LE(units, 60);
  if (openbsd) {
    if (spec.duid) Buffer.from(spec.duid, 'hex').copy(sector, 64);
    sector.writeUInt32LE(spec.sliceStart, 80);
    sector.writeUInt32LE(spec.sliceStart + spec.sliceSize, 84);
    sector.writeUInt16LE(1, 114); // d_version
  }
  sector.writeUInt32LE(8192, 140);
  sector.writeUInt32LE(65536, 144);
  const raw: Record<string, { start: number; size: number }> =
    spec.flavour === 'freebsd'
      ? { c: { start: 0, size: spec.sliceSize } }
      : spec.flavour === 'openbsd'
        ? { c: { start: 0, size: spec.diskSectors } }
        : { c: { start: spec.sliceStart, size: spec.sliceSize }, d: { start: 0, size: spec.diskSectors } };
  const letters = [...spec.partitions.map((p) => p.letter), ...Object.keys(raw)].sort();
  const count = Math.max(spec.flavour === 'openbsd' ? 16 : 8, (letters.at(-1) ?? 'a').charCodeAt(0) - 96);
  sector.writeUInt16LE(count, 138);
  const put = (letter: string, offset: number, size: number, fstype: number) => {
    const i = letter.charCodeAt(0) - 97;
    writeSize(sector, i, size, openbsd);
    writeOffset(sector, i, offset, openbsd);
    sector.writeUInt8(fstype, PARTITIONS_AT + i * PARTITION_SIZE + 12);
  };
  for (const [letter, r] of Object.entries(raw)) put(letter, r.start, r.size, FS_UNUSED);
  for (const p of spec.partitions)
    put(p.letter, spec.flavour === 'freebsd' ? p.start - spec.sliceStart : p.start, p.size, p.fstype);
  sector.writeUInt16LE(checksum(sector, count), 136);
  return sector;
}
