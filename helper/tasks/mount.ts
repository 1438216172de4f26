/**
 * MountImage / UmountImage: the root filesystem read-write under the target, then every
 * local filesystem of the guest's fstab the helper can mount (as upstream's mount_all in
 * snf-image-helper/common.sh.in: /srv, /data, ... as well as /boot, /usr, /var), by UUID=,
 * LABEL=, PARTUUID=, PARTLABEL= or the image's LVM volumes; nosuid and nodev everywhere,
 * mount points resolved inside the guest (no link of the image followed).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { filesystemType } from '../disks.ts';
import { deactivateVolumeGroup, rootDevice } from '../lvm.ts';
import { run, TaskError } from '../exec.ts';
import { GuestFs } from '../guest-files.ts';
import { isWindowsFamily, osFamily, type HelperContext } from '../context.ts';
import { checkFamily, checkSysprepped, inspectWindows } from '../windows/guest.ts';
import { mountNtfs, umountNtfs } from '../windows/ntfs.ts';
import { isBsdFamily } from '../bsd/partition-types.ts';
import { mountBsdImage } from '../os/bsd.ts';

/** Filesystem types of fstab entries the helper mounts (upstream's Linux list, less ntfs: FUSE mounts stay Windows-only). */
const MOUNTABLE = new Set(['auto', 'ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'vfat', 'msdos']);
/** Mount points never mounted: the root (already mounted) and what the guest's kernel fills at boot. */
const NOT_MOUNTED = /^\/(?:$|proc(?:\/|$)|sys(?:\/|$)|dev(?:\/|$)|run(?:\/|$))/;

/** The fstab entries MountImage mounts, parents first. */
export function entriesToMount(entries: readonly FstabEntry[]): FstabEntry[] {
  return entries
    .filter(
      (e) =>
        e.mountPoint.startsWith('/') &&
        !NOT_MOUNTED.test(e.mountPoint) &&
        MOUNTABLE.has(e.type) &&
        !e.options.split(',').includes('noauto'),
    )
    .sort((a, b) => a.mountPoint.length - b.mountPoint.length);
}

export interface FstabEntry {
  source: string;
  mountPoint: string;
  type: string;
  options: string;
}

export function parseFstab(text: string): FstabEntry[] {
  const entries: FstabEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [source, mountPoint, type, options] = line.split(/\s+/);
    if (!source || !mountPoint || !type) continue;
    entries.push({ source, mountPoint: mountPoint.replace(/\\040/g, ' '), type, options: options ?? 'defaults' });
  }
  return entries;
}

/** A logical volume of a volume group the helper activated, as fstab names it. */
export function isActivatedVolume(source: string, volumeGroups: readonly string[]): boolean {
  const m = /^\/dev\/(?:mapper\/([^/]+)|([^/]+)\/([^/]+))$/.exec(source);
  if (!m || [m[1], m[2], m[3]].some((c) => c === '.' || c === '..')) return false;
  // /dev/mapper/<vg>-<lv> (dashes in names doubled) or /dev/<vg>/<lv>
  if (m[1] !== undefined) return volumeGroups.some((vg) => m[1]?.startsWith(`${vg.replace(/-/g, '--')}-`));
  return volumeGroups.includes(m[2] as string);
}

async function resolveSource(source: string, volumeGroups: readonly string[]): Promise<string> {
  const m = /^(UUID|LABEL|PARTUUID|PARTLABEL)=(.+)$/.exec(source);
  if (m) {
    const r = await run('blkid', ['-l', '-o', 'device', '-t', `${m[1]}=${(m[2] ?? '').replace(/^"|"$/g, '')}`], {
      allowFailure: true,
    });
    const device = r.stdout.trim();
    if (device === '') throw new TaskError(`fstab names ${source}, but no partition of the image has it`);
    return device;
  }
  if (isActivatedVolume(source, volumeGroups) && existsSync(source)) return source;
  if (source.startsWith('/dev/'))
    throw new TaskError(
      `fstab names the device ${source}; only UUID=, LABEL=, PARTUUID=, PARTLABEL= and the image's LVM volumes can be found reliably`,
    );
  throw new TaskError(`unsupported fstab source ${source}`);
}

/**
 * Windows: the NTFS root with ntfs-3g, then what the tasks need from its registry; an
 * image sysprep did not generalize, or of another family than OSFAMILY, is refused.
 */
async function mountWindows(ctx: HelperContext, root: string, fs: string): Promise<void> {
  if (fs !== 'ntfs')
    throw new TaskError(
      `ROOT_PARTITION ${ctx.properties.ROOT_PARTITION} (${root}) holds ${fs}, not the NTFS filesystem of a Windows image`,
    );
  const { recovered } = await mountNtfs(root, ctx.target, false);
  ctx.mounts.push(ctx.target);
  if (recovered) ctx.warn(`the NTFS volume ${root} was not cleanly unmounted; ntfs-3g replayed its journal`);
  const info = await inspectWindows(ctx.target);
  checkFamily(info, osFamily(ctx));
  // A deployed instance has booted and is no longer generalized: rename must still work.
  if (ctx.config.operation === 'create') await checkSysprepped(info);
  ctx.windows = info;
  ctx.info(`Windows NT ${info.version} (${info.family}, ${info.arch}), control set ${info.controlSet}`);
}

export async function mountImage(ctx: HelperContext): Promise<void> {
  if (isBsdFamily(osFamily(ctx))) return mountBsdImage(ctx);
  const root = await rootDevice(ctx);
  mkdirSync(ctx.target, { recursive: true });
  const fs = await filesystemType(root);
  if (fs === '') throw new TaskError(`ROOT_PARTITION ${ctx.properties.ROOT_PARTITION} (${root}) holds no filesystem`);
  if (isWindowsFamily(osFamily(ctx))) return mountWindows(ctx, root, fs);
  await run('mount', ['-o', 'rw,nosuid,nodev', root, ctx.target]);
  ctx.mounts.push(ctx.target);
  const guest = new GuestFs(ctx.target);
  let fstab = '';
  try {
    fstab = guest.read('/etc/fstab');
  } catch {
    ctx.warn('the image has no /etc/fstab');
    return;
  }
  for (const entry of entriesToMount(parseFstab(fstab))) {
    let device: string;
    try {
      device = await resolveSource(entry.source, ctx.volumeGroups ?? []);
    } catch (error) {
      // The guest boots without a nofail entry it cannot find: so does the deployment.
      if (!entry.options.split(',').includes('nofail')) throw error;
      ctx.warn(`fstab entry for ${entry.mountPoint} not mounted (nofail): ${(error as Error).message}`);
      continue;
    }
    // Created (0755) inside the guest, through no link out of it; the mount follows no link either.
    const where = guest.mkdirp(entry.mountPoint, 0o755, 0, 0);
    await run('mount', ['-o', 'rw,nosuid,nodev', device, where]);
    ctx.mounts.push(where);
  }
}

/**
 * Unmounts the guest: the whole tree under the target at once, as the kernel's mount table
 * has it. The paths MountImage mounted on may lead elsewhere by now (an override can move
 * a directory holding a mount point aside and leave a link out of the guest in its place);
 * the table's paths are where the mounts are, without links.
 */
export async function umountImage(ctx: HelperContext): Promise<void> {
  await run('sync', []);
  if (ctx.mounts.length > 0) {
    if (ctx.windows) await umountNtfs(ctx.target);
    else await run('umount', ['--recursive', ctx.target]);
    ctx.mounts.length = 0;
  }
  for (const vg of ctx.volumeGroups ?? []) await deactivateVolumeGroup(vg);
  ctx.volumeGroups = [];
}
