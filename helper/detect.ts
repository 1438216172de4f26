/**
 * Detection of OSFAMILY and ROOT_PARTITION when the image properties do not give them: the
 * root is the partition whose filesystem holds /etc/fstab (upstream's rule: a separate
 * /boot does not; no OS release file is needed), or the LVM physical volume of a logical volume that does, or an
 * NTFS volume with Windows/System32.
 */
import { mkdirSync } from 'node:fs';
import { filesystemType, readPartitionTable, type Partition } from './disks.ts';
import { TaskError } from './exec.ts';
import type { OsFamily } from './context.ts';
import { bsdPartitionType } from './bsd/partition-types.ts';
import { ufsHoldsFstab } from './bsd/ufs.ts';
import { familyOfVersion, findCaseInsensitive, hivePaths, ntVersion } from './windows/guest.ts';
import { mountNtfs, NtfsHibernatedError, umountNtfs } from './windows/ntfs.ts';
import { activateVolumeGroup, deactivateVolumeGroup, findRootVolume } from './lvm.ts';
import { holdsLinuxRoot, withProbeMount } from './probe.ts';

const LINUX_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'jfs', 'reiserfs']);

/** Windows when the NTFS volume has Windows/System32; XP / 2003 (NT 5) are windows-legacy. */
async function probeNtfs(partition: Partition, mountPoint: string): Promise<OsFamily | undefined> {
  try {
    await mountNtfs(partition.node, mountPoint, true);
  } catch (error) {
    if (error instanceof NtfsHibernatedError) throw error;
    return undefined;
  }
  try {
    if (findCaseInsensitive(mountPoint, 'Windows', 'System32') === undefined) return undefined;
    return familyOfVersion(await ntVersion(hivePaths(mountPoint).software));
  } finally {
    await umountNtfs(mountPoint);
  }
}

async function probe(partition: Partition, fs: string, mountPoint: string): Promise<OsFamily | undefined> {
  mkdirSync(mountPoint, { recursive: true });
  if (fs === 'ntfs') return probeNtfs(partition, mountPoint);
  return (await withProbeMount(partition.node, fs, mountPoint, () => holdsLinuxRoot(mountPoint))) ? 'linux' : undefined;
}

export async function detectRoot(
  disk: string,
  mountPoint: string,
): Promise<{ osFamily: OsFamily; rootPartition: number }> {
  const table = await readPartitionTable(disk);
  for (const partition of [...table.partitions].sort((a, b) => a.number - b.number)) {
    const bsd = bsdPartitionType(partition.type);
    if (bsd && !bsd.root) continue;
    if (bsd && table.type === 'dos') return { osFamily: bsd.family, rootPartition: partition.number };
    if (bsd) {
      // GPT: a UFS partition without /etc/fstab (a separate /var or /usr) is not the root.
      mkdirSync(mountPoint, { recursive: true });
      if ((await ufsHoldsFstab(partition.node, mountPoint)) === false) continue;
      return { osFamily: bsd.family, rootPartition: partition.number };
    }
    const fs = await filesystemType(partition.node);
    if (fs === 'LVM2_member') {
      const { vg, lvs } = await activateVolumeGroup(partition.node);
      const root = await findRootVolume(lvs);
      await deactivateVolumeGroup(vg);
      if (root) return { osFamily: 'linux', rootPartition: partition.number };
      continue;
    }
    if (!LINUX_FS.has(fs) && fs !== 'ntfs') continue;
    const family = await probe(partition, fs, mountPoint);
    if (family) return { osFamily: family, rootPartition: partition.number };
  }
  throw new TaskError(
    'Unable to detect the root partition: no partition holds /etc/fstab or Windows/System32 (set ROOT_PARTITION and OSFAMILY in img_properties)',
  );
}
