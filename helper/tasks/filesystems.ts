/**
 * Filesystem growth: ext2/3/4 unmounted (after a forced check), xfs and btrfs mounted; on
 * an LVM physical volume the root logical volume grows first (lvm.ts). Windows NTFS and
 * FreeBSD / NetBSD UFS are grown by the guest at first boot, set up while mounted.
 */
import { run, TaskError } from '../exec.ts';
import { isWindowsFamily, isYes, osFamily, type HelperContext } from '../context.ts';
import { GuestFs } from '../guest-files.ts';
import { extendFilesystemAtFirstBoot } from '../os/windows.ts';
import { ntfsResize } from '../windows/ntfs.ts';
import { isBsdFamily } from '../bsd/partition-types.ts';
import { growBsdRootAtFirstBoot } from '../os/bsd.ts';
import { filesystemType, lastPartition, readPartitionTable } from '../disks.ts';
import { growRootVolume } from '../lvm.ts';

async function resizedPartition(ctx: HelperContext): Promise<string | undefined> {
  if (ctx.resizedPartition) return ctx.resizedPartition;
  const last = lastPartition(await readPartitionTable(ctx.disk));
  return last?.node;
}

export async function filesystemResizeUnmounted(ctx: HelperContext): Promise<void> {
  let node = await resizedPartition(ctx);
  if (!node) return;
  let fs = await filesystemType(node);
  if (fs === 'LVM2_member') {
    // An LVM root: the physical volume, then the root logical volume, then its filesystem.
    const volume = await growRootVolume(ctx, node);
    if (!volume) return;
    ctx.resizedPartition = node = volume;
    fs = await filesystemType(node);
  }
  if (!fs.startsWith('ext')) {
    if (!['xfs', 'btrfs', 'swap', 'ntfs', 'LVM2_member', ''].includes(fs))
      ctx.warn(`Cannot resize a ${fs} filesystem: only ext2/3/4, xfs and btrfs grow`);
    return;
  }
  const check = await run('e2fsck', ['-f', '-p', node], { allowFailure: true });
  // 0: clean, 1: errors corrected; anything else needs a person.
  if (check.code > 1)
    throw new TaskError(
      `The ${fs} filesystem on ${node} has errors e2fsck cannot fix automatically (exit ${check.code}): ${check.stdout.trim().split('\n').pop() ?? ''}`,
    );
  await run('resize2fs', [node]);
}

export async function filesystemResizeMounted(ctx: HelperContext): Promise<void> {
  if (isBsdFamily(osFamily(ctx))) return growBsdRootAtFirstBoot(ctx, new GuestFs(ctx.target));
  const node = await resizedPartition(ctx);
  if (!node) return;
  const fs = await filesystemType(node);
  if (isWindowsFamily(osFamily(ctx))) {
    if (fs !== 'ntfs') return;
    const number = Number(/(\d+)$/.exec(node)?.[1]);
    return extendFilesystemAtFirstBoot(ctx, new GuestFs(ctx.target), number);
  }
  if (fs !== 'xfs' && fs !== 'btrfs') return;
  const mounts = (await run('findmnt', ['-n', '-o', 'TARGET', '--source', node], { allowFailure: true })).stdout
    .trim()
    .split('\n')
    .filter(Boolean);
  const mountPoint = mounts[0];
  if (!mountPoint) {
    ctx.warn(`the ${fs} filesystem on ${node} is not mounted: not grown`);
    return;
  }
  if (fs === 'xfs') await run('xfs_growfs', [mountPoint]);
  else await run('btrfs', ['filesystem', 'resize', 'max', mountPoint]);
}

/**
 * Windows: ntfsresize after the volume is unmounted, for XP / 2003 (no diskpart at first
 * boot) and when OFFLINE_NTFSRESIZE asks for it; a dirty volume is refused unless
 * OFFLINE_NTFSRESIZE_NOCHECK.
 */
export async function filesystemResizeAfterUmount(ctx: HelperContext): Promise<void> {
  if (osFamily(ctx) === 'windows' && !isYes(ctx.properties.OFFLINE_NTFSRESIZE)) {
    ctx.info('the NTFS filesystem is extended by diskpart at first boot (OFFLINE_NTFSRESIZE not set)');
    return;
  }
  const node = await resizedPartition(ctx);
  if (!node) return;
  const fs = await filesystemType(node);
  if (fs !== 'ntfs') {
    ctx.info(`the last partition holds ${fs || 'no filesystem'}, not NTFS: nothing to resize`);
    return;
  }
  await ntfsResize(node, isYes(ctx.properties.OFFLINE_NTFSRESIZE_NOCHECK));
  ctx.info(`NTFS filesystem on ${node} grown to its partition`);
}
