/**
 * UFS/FFS as the helper can reach it: which UFS a partition holds (superblock magic), the
 * kernel's BSD-label partitions of a disk (sysfs start/size), the label of a slice on the
 * disk, and mounting. Debian's kernel reads UFS but is built without CONFIG_UFS_FS_WRITE:
 * a read-write mount fails and MountImage says so in one line.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { run, TaskError } from '../exec.ts';
import { LABEL_OFFSET } from './disklabel.ts';
import type { KernelPartition } from './devices.ts';

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
  return head.length >= 65536 + MAGIC_AT + 4 && [head.readUInt32LE(65536 + MAGIC_AT), head.readUInt32BE(65536 + MAGIC_AT)].includes(UFS2_MAGIC);
}

export function readAt(device: string, position: number, length: number): Buffer {
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

export const UFS_WRITE_UNAVAILABLE = "UFS write support is not available in the helper kernel: Debian's linux-image-amd64 is built without CONFIG_UFS_FS_WRITE (and bookworm has no ufsutils), so this image cannot be customized; deploy it with img_properties EXCLUDE_MOUNTED_TASKS=yes";

/** Mounts a UFS partition read-write, or fails with UFS_WRITE_UNAVAILABLE when the kernel cannot write UFS. */
export async function mountUfs(node: string, where: string): Promise<void> {
  const head = readAt(node, 0, 65536 + 4096);
  const type = ufsTypeOf(head);
  if (!type) throw new TaskError(`${node} holds no UFS/FFS filesystem (no UFS1 or UFS2 superblock)`);
  if (type === 'ufs2' && !ufs2At64k(head)) throw new TaskError(`${node} is UFS2 with its superblock at 8 KiB (as NetBSD's makefs writes it): the Linux ufs driver reads UFS2 superblocks at 64 KiB only`);
  await run('modprobe', ['ufs'], { allowFailure: true });
  const r = await run('mount', ['-t', 'ufs', '-o', `rw,nosuid,nodev,ufstype=${type}`, node, where], { allowFailure: true });
  if (r.code !== 0) {
    const why = (r.stderr.trim() || r.stdout.trim()).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('dmesg(1)')).pop() ?? '';
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
  const r = await run('mount', ['-t', 'ufs', '-o', `ro,nosuid,nodev,noexec,ufstype=${type}`, node, where], { allowFailure: true });
  if (r.code !== 0) return undefined;
  try {
    return existsSync(`${where}/etc/fstab`);
  } finally {
    await run('umount', [where], { allowFailure: true });
  }
}
