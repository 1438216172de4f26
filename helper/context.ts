/**
 * What every helper task works with: the config document, the deployed disk, the detected
 * OS family and root partition, the guest mount point, and ways to report.
 */
import type { ConfigDocument } from '../src/helper-vm/config-document.ts';
import type { OsFamily } from './plan/families.ts';
import type { ImageProperties } from './plan/properties.ts';
import type { WindowsInfo } from './windows/guest.ts';

export type { OsFamily } from './plan/families.ts';

export interface HelperContext {
  config: ConfigDocument;
  /** Device of instance disk 0, e.g. /dev/vdb. */
  disk: string;
  /** Devices of all instance disks, by index. */
  disks: string[];
  /** Image properties, upper-case names, typed by the property table; detection fills OSFAMILY / ROOT_PARTITION. */
  properties: ImageProperties;
  /** Where the guest root is mounted while mounted tasks run. */
  target: string;
  /** Filesystems mounted under target, in mount order. */
  mounts: string[];
  /** Partition FixPartitionTable grew (filesystem resize works on it; an LVM root: the root volume). */
  resizedPartition?: string;
  /** What MountImage learned from a Windows volume (registry hives, version, architecture). */
  windows?: WindowsInfo;
  /** Device of the root filesystem once known: the root partition or its LVM logical volume. */
  rootDevice?: string;
  /** LVM volume groups the helper activated (deactivated by UmountImage). */
  volumeGroups?: string[];
  warn(message: string): void;
  info(message: string): void;
}

export { isYes } from '../src/util/flags.ts';

export function isWindowsFamily(family: string | undefined): boolean {
  return family === 'windows' || family === 'windows-legacy';
}

export function osFamily(ctx: HelperContext): OsFamily | undefined {
  return ctx.properties.OSFAMILY as OsFamily | undefined;
}
