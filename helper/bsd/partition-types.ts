/**
 * BSD partition types: which OS family an MBR slice type or a GPT partition type GUID
 * belongs to, and whether that partition can hold a root filesystem (UFS/FFS).
 */
import type { OsFamily } from '../context.ts';

export type BsdFamily = Extract<OsFamily, 'freebsd' | 'openbsd' | 'netbsd'>;

export function isBsdFamily(family: string | undefined): family is BsdFamily {
  return family === 'freebsd' || family === 'openbsd' || family === 'netbsd';
}

/** MBR slice types (sfdisk's lower-case hex without leading zeros). */
export const BSD_MBR_TYPES: Readonly<Record<string, BsdFamily>> = { a5: 'freebsd', a6: 'openbsd', a9: 'netbsd' };

interface GptType {
  family: BsdFamily;
  /** A UFS/FFS partition: a root candidate. */
  root: boolean;
  what: string;
}

/** GPT partition type GUIDs (lower case) of the three families. */
const BSD_GPT_TYPES: Readonly<Record<string, GptType>> = {
  '516e7cb6-6ecf-11d6-8ff8-00022d09712b': { family: 'freebsd', root: true, what: 'freebsd-ufs' },
  '83bd6b9d-7f41-11dc-be0b-001560b84f0f': { family: 'freebsd', root: false, what: 'freebsd-boot' },
  '516e7cb5-6ecf-11d6-8ff8-00022d09712b': { family: 'freebsd', root: false, what: 'freebsd-swap' },
  '516e7cba-6ecf-11d6-8ff8-00022d09712b': { family: 'freebsd', root: false, what: 'freebsd-zfs' },
  '824cc7a0-36a8-11e3-890a-952519ad3f61': { family: 'openbsd', root: true, what: 'openbsd-data' },
  '49f48d5a-b10e-11dc-b99b-0019d1879648': { family: 'netbsd', root: true, what: 'netbsd-ffs' },
  '49f48d32-b10e-11dc-b99b-0019d1879648': { family: 'netbsd', root: false, what: 'netbsd-swap' },
};

/**
 * The BSD family a partition type says, and whether the partition may be the root. An MBR
 * slice is a root candidate (its disklabel holds the root); a GPT partition only when its
 * type is a UFS/FFS type (freebsd-boot, swap and ZFS partitions are not).
 */
export function bsdPartitionType(type: string): { family: BsdFamily; root: boolean } | undefined {
  const t = type.toLowerCase();
  const mbr = BSD_MBR_TYPES[t.replace(/^0x/, '').replace(/^0+(?=.)/, '')];
  if (mbr) return { family: mbr, root: true };
  const gpt = BSD_GPT_TYPES[t];
  return gpt ? { family: gpt.family, root: gpt.root } : undefined;
}
