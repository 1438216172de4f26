/**
 * LVM roots: the root filesystem in a logical volume of a volume group whose physical
 * volume is a partition of disk 0. Volume groups are activated without udev (LVM makes
 * the /dev nodes itself), read with the image's metadata only, never backed up, and
 * deactivated when the guest is unmounted.
 */
import type { HelperContext } from './context.ts';
import { filesystemType, partitionNode } from './disks.ts';
import { run, TaskError } from './exec.ts';
import { holdsLinuxRoot, withProbeMount } from './probe.ts';

const CONFIG =
  'devices { use_devicesfile = 0 } activation { udev_sync = 0 udev_rules = 0 } backup { backup = 0 archive = 0 }';
const PROBE = '/run/snf-lvm-probe';
const LINUX_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs']);

const lvm = (command: string, args: readonly string[], allowFailure = false) =>
  run('lvm', [command, '--config', CONFIG, ...args], { allowFailure, label: `lvm ${command}` });

async function isPhysicalVolume(node: string): Promise<boolean> {
  return (await filesystemType(node)) === 'LVM2_member';
}

/** Activates the volume group on the physical volume; its name and logical volume paths. */
export async function activateVolumeGroup(pv: string): Promise<{ vg: string; lvs: string[] }> {
  const vg = (await lvm('pvs', ['--noheadings', '-o', 'vg_name', pv])).stdout.trim();
  if (vg === '') throw new TaskError(`the LVM physical volume ${pv} belongs to no volume group`);
  await run('modprobe', ['dm_mod'], { allowFailure: true });
  await lvm('vgchange', ['-ay', vg]);
  await lvm('vgmknodes', [vg], true);
  const lvs = (await lvm('lvs', ['--noheadings', '-o', 'lv_path', vg])).stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return { vg, lvs };
}

export async function deactivateVolumeGroup(vg: string): Promise<void> {
  await lvm('vgchange', ['-an', vg]);
}

/** The logical volume whose filesystem holds /etc/fstab. */
export async function findRootVolume(lvs: readonly string[]): Promise<string | undefined> {
  for (const lv of lvs) {
    const fs = await filesystemType(lv);
    if (!LINUX_FS.has(fs)) continue;
    if (await withProbeMount(lv, fs, PROBE, () => holdsLinuxRoot(PROBE))) return lv;
  }
  return undefined;
}

function remember(ctx: HelperContext, vg: string): void {
  ctx.volumeGroups ??= [];
  if (!ctx.volumeGroups.includes(vg)) ctx.volumeGroups.push(vg);
}

/**
 * The device of the root filesystem: the ROOT_PARTITION partition, or, when that is an LVM
 * physical volume, the root logical volume in it (its volume group activated).
 */
export async function rootDevice(ctx: HelperContext): Promise<string> {
  if (ctx.rootDevice) return ctx.rootDevice;
  const node = partitionNode(ctx.disk, Number(ctx.properties.ROOT_PARTITION));
  if (!(await isPhysicalVolume(node))) {
    ctx.rootDevice = node;
    return node;
  }
  const { vg, lvs } = await activateVolumeGroup(node);
  remember(ctx, vg);
  const root = await findRootVolume(lvs);
  if (!root)
    throw new TaskError(
      `ROOT_PARTITION ${ctx.properties.ROOT_PARTITION} is an LVM physical volume, but no logical volume of ${vg} holds /etc/fstab`,
    );
  ctx.info(`root filesystem on the logical volume ${root}`);
  ctx.rootDevice = root;
  return root;
}

/**
 * After FixPartitionTable grew the physical volume `pv`: pvresize, then the root logical
 * volume takes every free extent (lvextend -l +100%FREE). Returns the grown volume.
 */
export async function growRootVolume(ctx: HelperContext, pv: string): Promise<string | undefined> {
  await lvm('pvresize', [pv]);
  const root = await rootDevice(ctx);
  const { vg } = await activateVolumeGroup(pv);
  remember(ctx, vg);
  const owner = (await lvm('lvs', ['--noheadings', '-o', 'vg_name', root], true)).stdout.trim();
  if (owner !== vg) {
    ctx.warn(`the grown physical volume ${pv} is not in the root's volume group: no logical volume extended`);
    return undefined;
  }
  const free = Number((await lvm('vgs', ['--noheadings', '-o', 'vg_free_count', vg])).stdout.trim());
  if (free > 0) await lvm('lvextend', ['-l', '+100%FREE', root]);
  ctx.info(`${root} extended by ${free} extents of ${vg}`);
  return root;
}
