/**
 * UFS/FFS as the helper can reach it: which UFS a partition holds (superblock magic), the
 * kernel's BSD-label partitions of a disk (sysfs start/size), the label of a slice on the
 * disk, and mounting read-write. Debian's kernel reads UFS but is built without
 * CONFIG_UFS_FS_WRITE; the helper build replaces its ufs.ko with the same module built
 * with write support from Debian's linux-source (helper/build/build-helper.sh). Before a
 * read-write mount the superblock is checked: a filesystem not cleanly unmounted is
 * refused, and FreeBSD's metadata check hashes, which the Linux driver does not maintain,
 * are turned off (FreeBSD would otherwise reject the cylinder groups and inodes Linux
 * wrote).
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { run, TaskError } from '../exec.ts';
import { LABEL_OFFSET } from './disklabel.ts';
import type { KernelPartition } from './devices.ts';
import type { BsdFamily } from './partition-types.ts';

export type UfsType = 'ufs2' | '44bsd';

const UFS1_MAGIC = 0x011954;
const UFS2_MAGIC = 0x19540119;
const MAGIC_AT = 1372;

/**
 * UFS2 or UFS1, from the superblock magic (either byte order). FreeBSD puts the UFS2
 * superblock at 64 KiB; NetBSD's makefs (and NetBSD) at 8 KiB, where UFS1's lives.
 */
export function ufsTypeOf(head: Buffer): UfsType | undefined {
  const magic = (at: number) => (head.length >= at + 4 ? [head.readUInt32LE(at), head.readUInt32BE(at)] : []);
  if (magic(65536 + MAGIC_AT).includes(UFS2_MAGIC) || magic(8192 + MAGIC_AT).includes(UFS2_MAGIC)) return 'ufs2';
  if (magic(8192 + MAGIC_AT).includes(UFS1_MAGIC)) return '44bsd';
  return undefined;
}

/** Whether the UFS2 superblock is where FreeBSD's newfs puts it (64 KiB), the only place Linux looks. */
export function ufs2At64k(head: Buffer): boolean {
  return (
    head.length >= 65536 + MAGIC_AT + 4 &&
    [head.readUInt32LE(65536 + MAGIC_AT), head.readUInt32BE(65536 + MAGIC_AT)].includes(UFS2_MAGIC)
  );
}

function readAt(device: string, position: number, length: number): Buffer {
  const fd = openSync(device, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const n = readSync(fd, buffer, 0, length, position);
    return buffer.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

export function writeAt(device: string, position: number, data: Buffer): void {
  const fd = openSync(device, 'r+');
  try {
    writeSync(fd, data, 0, data.length, position);
  } finally {
    closeSync(fd);
  }
}

export function readLabelSector(disk: string, sliceStart: number): Buffer {
  return readAt(disk, sliceStart * 512 + LABEL_OFFSET, 512);
}

/** Every partition the kernel made of `disk` (BSD-label ones included), with start and size. */
export function kernelPartitions(disk: string, sysClassBlock = '/sys/class/block'): KernelPartition[] {
  const name = basename(disk);
  const dir = `${sysClassBlock}/${name}`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((e) => e.startsWith(name) && existsSync(`${dir}/${e}/start`))
    .map((e) => ({
      node: `/dev/${e}`,
      start: Number(readFileSync(`${dir}/${e}/start`, 'utf8').trim()),
      size: Number(readFileSync(`${dir}/${e}/size`, 'utf8').trim()),
    }));
}

export const UFS_WRITE_UNAVAILABLE =
  "UFS write support is not available in the helper: its ufs module is Debian's, built without CONFIG_UFS_FS_WRITE (a helper built with --no-ufs-write, or by an older snf-image); run snf-image-update-helper, or deploy this image with img_properties EXCLUDE_MOUNTED_TASKS=yes";

// struct fs (4.4BSD / FreeBSD layout, shared by UFS1 and UFS2), byte offsets.
const SB_CLEAN = 209;
const SB_OLD_FLAGS = 211;
const SB_CKHASH = 1304;
const SB_METACKHASH = 1308;
const SB_FLAGS = 1312;
const FS_FLAGS_UPDATED = 0x80;
const FS_METACKHASH = 0x200;
const FSCLEAN = 1;

export interface UfsSuperblock {
  /** Where the superblock starts on the partition. */
  offset: number;
  type: UfsType;
  littleEndian: boolean;
  clean: number;
  /** fs_flags (or the 8-bit fs_old_flags of filesystems that predate the move). */
  flags: number;
  /** FreeBSD's fs_metackhash: which metadata carries check hashes. */
  metackhash: number;
}

/** The superblock of a UFS partition whose first 68 KiB are `head`. */
export function readUfsSuperblock(head: Buffer): UfsSuperblock | undefined {
  const type = ufsTypeOf(head);
  if (!type) return undefined;
  const offset = type === 'ufs2' && ufs2At64k(head) ? 65536 : 8192;
  const magic = head.readUInt32LE(offset + MAGIC_AT);
  const littleEndian = magic === UFS1_MAGIC || magic === UFS2_MAGIC;
  const u32 = (at: number) => (littleEndian ? head.readUInt32LE(offset + at) : head.readUInt32BE(offset + at));
  const oldFlags = head.readUInt8(offset + SB_OLD_FLAGS);
  const flagsMoved = (oldFlags & FS_FLAGS_UPDATED) !== 0;
  return {
    offset,
    type,
    littleEndian,
    clean: head.readUInt8(offset + SB_CLEAN),
    flags: flagsMoved ? u32(SB_FLAGS) : oldFlags,
    metackhash: flagsMoved ? u32(SB_METACKHASH) : 0,
  };
}

/**
 * The superblock with FreeBSD's metadata check hashes turned off (fs_metackhash 0,
 * FS_METACKHASH cleared, the superblock's own fs_ckhash zeroed), or undefined when it has
 * none. Only for FreeBSD filesystems: the other BSDs use these fields differently.
 */
export function withoutCheckHashes(head: Buffer, sb: UfsSuperblock): Buffer | undefined {
  if (sb.metackhash === 0 && (sb.flags & FS_METACKHASH) === 0) return undefined;
  const out = Buffer.from(head.subarray(sb.offset, sb.offset + 2048));
  const w32 = (at: number, v: number) =>
    sb.littleEndian ? out.writeUInt32LE(v >>> 0, at) : out.writeUInt32BE(v >>> 0, at);
  w32(SB_METACKHASH, 0);
  w32(SB_CKHASH, 0);
  w32(SB_FLAGS, sb.flags & ~FS_METACKHASH);
  return out;
}

/**
 * Mounts a UFS partition read-write, or fails: a filesystem not cleanly unmounted, or
 * UFS_WRITE_UNAVAILABLE when the helper's ufs module cannot write. `family` freebsd turns
 * its metadata check hashes off first (with a warning).
 */
export async function mountUfs(
  node: string,
  where: string,
  family: BsdFamily,
  warn: (message: string) => void,
): Promise<void> {
  const head = readAt(node, 0, 65536 + 4096);
  const sb = readUfsSuperblock(head);
  if (!sb) throw new TaskError(`${node} holds no UFS/FFS filesystem (no UFS1 or UFS2 superblock)`);
  const type = sb.type;
  if (type === 'ufs2' && !ufs2At64k(head))
    throw new TaskError(
      `${node} is UFS2 with its superblock at 8 KiB (as NetBSD's makefs writes it): the Linux ufs driver reads UFS2 superblocks at 64 KiB only`,
    );
  if (sb.clean !== FSCLEAN)
    throw new TaskError(
      `the ${family} filesystem on ${node} was not cleanly unmounted (fs_clean ${sb.clean}): run fsck_ffs on it in ${family}, then make the image again`,
    );
  if (family === 'freebsd') {
    const plain = withoutCheckHashes(head, sb);
    if (plain) {
      writeAt(node, sb.offset, plain);
      warn(
        `${node}: FreeBSD metadata check hashes (fs_metackhash 0x${sb.metackhash.toString(16)}) turned off: the Linux UFS driver does not maintain them`,
      );
    }
  }
  await run('modprobe', ['ufs'], { allowFailure: true });
  // noexec: nothing of a BSD image runs in the (Linux) helper.
  const r = await run('mount', ['-t', 'ufs', '-o', `rw,nosuid,nodev,noexec,ufstype=${type}`, node, where], {
    allowFailure: true,
  });
  if (r.code !== 0) {
    const why =
      (r.stderr.trim() || r.stdout.trim())
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('dmesg(1)'))
        .pop() ?? '';
    if (/read-only|write-protected/i.test(why)) throw new TaskError(UFS_WRITE_UNAVAILABLE);
    throw new TaskError(`cannot mount ${node} as UFS (ufstype=${type})${why ? `: ${why}` : ''}`);
  }
  // mount(8) falls back to read-only when the kernel refuses to write (EROFS): not good enough.
  const options = (await run('findmnt', ['-n', '-o', 'OPTIONS', where], { allowFailure: true })).stdout.trim();
  if (!options.split(',').includes('ro')) return;
  await run('umount', [where], { allowFailure: true });
  throw new TaskError(UFS_WRITE_UNAVAILABLE);
}

/**
 * Detection by contents: whether a UFS partition holds /etc/fstab, mounted read-only (the
 * stock kernel reads UFS). undefined when it cannot be mounted: the partition type decides.
 */
export async function ufsHoldsFstab(node: string, where: string): Promise<boolean | undefined> {
  const type = ufsTypeOf(readAt(node, 0, 65536 + 4096));
  if (!type) return undefined;
  await run('modprobe', ['ufs'], { allowFailure: true });
  const r = await run('mount', ['-t', 'ufs', '-o', `ro,nosuid,nodev,noexec,ufstype=${type}`, node, where], {
    allowFailure: true,
  });
  if (r.code !== 0) return undefined;
  try {
    return existsSync(`${where}/etc/fstab`);
  } finally {
    await run('umount', [where], { allowFailure: true });
  }
}
