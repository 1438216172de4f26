/**
 * The one table of helper tasks: name, order, run-after / run-before, attributes, OS
 * families and required inputs. It drives ordering, the EXCLUDE_* properties, the docs and
 * the tests (which check that the orders honour every after/before).
 */
import { osFamily, type HelperContext, type OsFamily } from './context.ts';
import { GuestFs } from './guest-files.ts';
import { adapterFor } from './os/adapter.ts';
import { disableRemoteDesktopConnections, installUnattend } from './os/windows.ts';
import {
  filesystemResizeAfterUmount,
  filesystemResizeMounted,
  filesystemResizeUnmounted,
} from './tasks/filesystems.ts';
import { mountImage, umountImage } from './tasks/mount.ts';
import { initializeDatasource } from './tasks/cloud-init.ts';
import { runCustomTask } from './tasks/custom-task.ts';
import { configureNetwork } from './tasks/network.ts';
import { fixPartitionTable } from './tasks/partitions.ts';
import { enforcePersonality } from './tasks/personality.ts';
import { addSwap } from './tasks/swap.ts';

interface TaskAttributes {
  /** Honours EXCLUDE_TASK_<NAME>. */
  excludable: boolean;
  /** Skipped by EXCLUDE_FILESYSTEMRESIZE_TASKS. */
  fsResize: boolean;
  /** Needs the guest mounted; skipped by EXCLUDE_MOUNTED_TASKS. */
  mounted: boolean;
  /** Skipped in cloud-init mode (CLOUD_INIT). */
  cloudInitExcludable: boolean;
  /** The image may override it (ALLOW_MOUNTED_TASK_OVERWRITING). */
  overwritable: boolean;
}

/** Inputs a task needs: without them it is skipped (not an error). */
type Requirement = 'password-or-keys' | 'personality' | 'swap' | 'custom-task' | 'cloud-init';

export interface TaskSpec {
  name: string;
  order: number;
  runAfter: readonly string[];
  runBefore: readonly string[];
  attributes: TaskAttributes;
  families: readonly OsFamily[];
  requires: readonly Requirement[];
  description: string;
  run(ctx: HelperContext): Promise<void>;
}

const attrs = (flags: string): TaskAttributes => ({
  excludable: flags.includes('E'),
  fsResize: flags.includes('F'),
  mounted: flags.includes('M'),
  cloudInitExcludable: flags.includes('C'),
  overwritable: flags.includes('O'),
});

const LINUX: readonly OsFamily[] = ['linux'];
const WINDOWS: readonly OsFamily[] = ['windows', 'windows-legacy'];
const LINUX_WINDOWS: readonly OsFamily[] = [...LINUX, ...WINDOWS];
const BSD: readonly OsFamily[] = ['freebsd', 'openbsd', 'netbsd'];
const guest = (ctx: HelperContext) => new GuestFs(ctx.target);

export const TASKS: readonly TaskSpec[] = [
  {
    name: 'FixPartitionTable',
    order: 10,
    runAfter: [],
    runBefore: ['FilesystemResizeUnmounted'],
    attributes: attrs('EC'),
    families: [...LINUX_WINDOWS, ...BSD],
    requires: [],
    description: 'grow the last partition to the end of the disk (MBR, GPT, logical partitions)',
    run: fixPartitionTable,
  },
  {
    name: 'FilesystemResizeUnmounted',
    order: 20,
    runAfter: ['FixPartitionTable'],
    runBefore: ['MountImage'],
    attributes: attrs('EFC'),
    families: LINUX,
    requires: [],
    description: 'grow an ext2/3/4 filesystem on the grown partition (after e2fsck)',
    run: filesystemResizeUnmounted,
  },
  {
    name: 'MountImage',
    order: 30,
    runAfter: [],
    runBefore: ['UmountImage'],
    attributes: attrs('M'),
    families: [...LINUX_WINDOWS, ...BSD],
    requires: [],
    description: 'mount the root filesystem and the fstab entries customization needs',
    run: mountImage,
  },
  {
    name: 'InitializeDatasource',
    order: 35,
    runAfter: ['MountImage'],
    runBefore: ['UmountImage'],
    attributes: attrs('MO'),
    families: LINUX,
    requires: ['cloud-init'],
    description:
      'cloud-init mode (CLOUD_INIT): write the NoCloud seed (hostname, keys, password hash, cloud_userdata, network-config v2) instead of editing files',
    run: initializeDatasource,
  },
  {
    name: 'InstallUnattend',
    order: 35,
    runAfter: ['MountImage'],
    runBefore: ['FilesystemResizeMounted'],
    attributes: attrs('MOC'),
    families: WINDOWS,
    requires: [],
    description:
      'install the answer file (the image one, os_answer_file or the built-in one) with the product key and the first-boot clean-up script (Windows)',
    run: (ctx) => installUnattend(ctx, guest(ctx)),
  },
  {
    name: 'FilesystemResizeMounted',
    order: 40,
    runAfter: ['MountImage'],
    runBefore: ['UmountImage'],
    attributes: attrs('EMFOC'),
    families: [...LINUX_WINDOWS, ...BSD],
    requires: [],
    description:
      'grow a mounted xfs or btrfs filesystem; have Windows (diskpart) and FreeBSD / NetBSD (rc.conf) grow their root filesystem at first boot',
    run: filesystemResizeMounted,
  },
  {
    name: 'AddSwap',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: attrs('EMO'),
    families: LINUX,
    requires: ['swap'],
    description: 'mkswap on the SWAP partition or disk, fstab entry by UUID',
    run: addSwap,
  },
  {
    name: 'AssignHostname',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: attrs('EMO'),
    families: [...LINUX_WINDOWS, ...BSD],
    requires: [],
    description: 'set the hostname (per distribution) and the 127.0.1.1 line of /etc/hosts',
    run: (ctx) => adapterFor(osFamily(ctx)).assignHostname(ctx, guest(ctx)),
  },
  {
    name: 'ChangeMachineId',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: attrs('EMO'),
    families: LINUX,
    requires: [],
    description: 'give the instance its own /etc/machine-id',
    run: (ctx) => adapterFor(osFamily(ctx)).changeMachineId(ctx, guest(ctx)),
  },
  {
    name: 'ChangePassword',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: attrs('EMOC'),
    families: [...LINUX_WINDOWS, ...BSD],
    requires: ['password-or-keys'],
    description: 'set the password of USERS (hashed in the helper) and append auth_keys',
    run: (ctx) => adapterFor(osFamily(ctx)).changePassword(ctx, guest(ctx)),
  },
  {
    name: 'ConfigureNetwork',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: attrs('EMO'),
    families: [...LINUX, ...BSD],
    requires: [],
    description:
      'configure the NICs (static, DHCP, SLAAC, DHCPv6) for the network system the guest uses, matched by MAC address',
    run: configureNetwork,
  },
  {
    name: 'DeleteSSHKeys',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: attrs('EMOC'),
    families: [...LINUX, ...BSD],
    requires: [],
    description: 'replace the image SSH host keys with fresh ones of every type sshd uses',
    run: (ctx) => adapterFor(osFamily(ctx)).deleteSshKeys(ctx, guest(ctx)),
  },
  {
    name: 'SELinuxAutorelabel',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: attrs('EMO'),
    families: LINUX,
    requires: [],
    description: 'request an SELinux relabel at first boot (redhat family)',
    run: (ctx) => adapterFor(osFamily(ctx)).selinuxAutorelabel(ctx, guest(ctx)),
  },
  {
    name: 'DisableRemoteDesktopConnections',
    order: 50,
    runAfter: ['InstallUnattend'],
    runBefore: ['EnforcePersonality'],
    attributes: attrs('EMOC'),
    families: WINDOWS,
    requires: [],
    description: 'deny Remote Desktop connections until first boot has run, then restore the image setting (Windows)',
    run: (ctx) => disableRemoteDesktopConnections(ctx, guest(ctx)),
  },
  {
    name: 'EnforcePersonality',
    order: 60,
    runAfter: ['MountImage'],
    runBefore: ['UmountImage'],
    attributes: attrs('EMO'),
    families: [...LINUX_WINDOWS, ...BSD],
    requires: ['personality'],
    description: 'inject the img_personality files with owner, group and mode',
    run: enforcePersonality,
  },
  {
    name: 'RunCustomTask',
    order: 70,
    runAfter: ['EnforcePersonality'],
    runBefore: ['UmountImage'],
    attributes: attrs('EMO'),
    families: [...LINUX, ...BSD],
    requires: ['custom-task'],
    description: 'run the CUSTOM_TASK program (base64) in the helper with the guest mounted at TARGET',
    run: runCustomTask,
  },
  {
    name: 'UmountImage',
    order: 80,
    runAfter: ['MountImage'],
    runBefore: [],
    attributes: attrs('M'),
    families: [...LINUX_WINDOWS, ...BSD],
    requires: [],
    description: 'unmount everything MountImage mounted',
    run: umountImage,
  },
  {
    name: 'FilesystemResizeAfterUmount',
    order: 81,
    runAfter: ['UmountImage'],
    runBefore: [],
    attributes: attrs('EFC'),
    families: WINDOWS,
    requires: [],
    description: 'grow the NTFS filesystem offline with ntfsresize (OFFLINE_NTFSRESIZE, and Windows XP / 2003)',
    run: filesystemResizeAfterUmount,
  },
];

/** Problems in the table itself: after/before constraints the orders break, unknown names. */
export function tableProblems(tasks: readonly TaskSpec[] = TASKS): string[] {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const problems: string[] = [];
  for (const task of tasks) {
    for (const other of task.runAfter) {
      const o = byName.get(other);
      if (!o) problems.push(`${task.name}: runAfter names unknown task ${other}`);
      else if (o.order >= task.order)
        problems.push(`${task.name} (${task.order}) must run after ${other} (${o.order})`);
    }
    for (const other of task.runBefore) {
      const o = byName.get(other);
      if (!o) problems.push(`${task.name}: runBefore names unknown task ${other}`);
      else if (o.order <= task.order)
        problems.push(`${task.name} (${task.order}) must run before ${other} (${o.order})`);
    }
  }
  return problems;
}
