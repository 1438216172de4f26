/**
 * The one table of helper tasks, as data: name, order, run-after / run-before, attributes,
 * OS families, required inputs, the operations that run it and what it does. It drives the
 * helper's ordering and decisions (decide.ts, for host and helper alike), the EXCLUDE_*
 * properties and the README's task table (npm run generate). helper/task-table.ts gives each
 * task its body. Pure data: the host imports it too.
 */
import type { OsFamily } from './families.ts';

/** What sets a task apart, by name. */
interface TaskAttributes {
  /** Honours EXCLUDE_TASK_<Name>. */
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

/** The Ganeti operations that boot the helper. */
export type Operation = 'create' | 'rename';

export interface TaskDeclaration {
  name: string;
  order: number;
  runAfter: readonly string[];
  runBefore: readonly string[];
  attributes: TaskAttributes;
  /** Mounts or unmounts for the other tasks: alone it is no reason to boot the helper. */
  bracket?: true;
  families: readonly OsFamily[];
  requires: readonly Requirement[];
  /** The operations that run it (every task runs on create; rename runs only the hostname). */
  operations: readonly Operation[];
  /** What it does: the README's task table. */
  description: string;
}

const LINUX = ['linux'] as const satisfies readonly OsFamily[];
const WINDOWS = ['windows', 'windows-legacy'] as const satisfies readonly OsFamily[];
const BSD = ['freebsd', 'openbsd', 'netbsd'] as const satisfies readonly OsFamily[];
const LINUX_BSD = [...LINUX, ...BSD];
const ALL = [...LINUX, ...WINDOWS, ...BSD];
const CREATE = ['create'] as const satisfies readonly Operation[];
const CREATE_RENAME = ['create', 'rename'] as const satisfies readonly Operation[];

export const TASK_SPECS = [
  {
    name: 'FixPartitionTable',
    order: 10,
    runAfter: [],
    runBefore: ['FilesystemResizeUnmounted'],
    attributes: { excludable: true, fsResize: false, mounted: false, cloudInitExcludable: true, overwritable: false },
    families: ALL,
    requires: [],
    operations: CREATE,
    description:
      'grow the last partition (MBR, logical, GPT) to the disk end; with `SWAP=<n>:<MB>` up to a swap partition `<n>` carved at the end (logical, in the existing or a new extended partition, when `<n>` ≥ 5)',
  },
  {
    name: 'FilesystemResizeUnmounted',
    order: 20,
    runAfter: ['FixPartitionTable'],
    runBefore: ['MountImage'],
    attributes: { excludable: true, fsResize: true, mounted: false, cloudInitExcludable: true, overwritable: false },
    families: LINUX,
    requires: [],
    operations: CREATE,
    description:
      'an LVM root first: `pvresize`, `lvextend -l +100%FREE` of the root volume; then e2fsck and grow ext2/3/4',
  },
  {
    name: 'MountImage',
    order: 30,
    runAfter: [],
    runBefore: ['UmountImage'],
    attributes: { excludable: false, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: false },
    bracket: true,
    families: ALL,
    requires: [],
    operations: CREATE_RENAME,
    description:
      "mount the root (an LVM root: its volume group activated, the volume holding `/etc/fstab`) and, as upstream, every local filesystem of its fstab (ext2/3/4, xfs, btrfs, vfat; not `noauto`; a `nofail` entry not found is skipped with a warning) by UUID=, LABEL=, PARTUUID=, PARTLABEL= or the image's LVM volumes",
  },
  {
    name: 'InitializeDatasource',
    order: 35,
    runAfter: ['MountImage'],
    runBefore: ['UmountImage'],
    attributes: { excludable: false, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: true },
    families: LINUX,
    requires: ['cloud-init'],
    operations: CREATE,
    description:
      'only with `CLOUD_INIT`: the NoCloud seed in `/var/lib/cloud/seed/nocloud-net` (meta-data: hostname, `auth_keys`; user-data: `cloud_userdata` as given, emptied at first boot by a per-once script as upstream; vendor-data: password hash, new host keys, swap file; `prefer_fqdn_over_hostname` so the hostname is the FQDN, as in files mode)',
  },
  {
    name: 'InstallUnattend',
    order: 35,
    runAfter: ['MountImage'],
    runBefore: ['FilesystemResizeMounted'],
    attributes: { excludable: false, fsResize: false, mounted: true, cloudInitExcludable: true, overwritable: true },
    families: WINDOWS,
    requires: [],
    operations: CREATE,
    description: 'the answer file (see [Windows guests](#windows-guests))',
  },
  {
    name: 'FilesystemResizeMounted',
    order: 40,
    runAfter: ['MountImage'],
    runBefore: ['UmountImage'],
    attributes: { excludable: true, fsResize: true, mounted: true, cloudInitExcludable: true, overwritable: true },
    families: ALL,
    requires: [],
    operations: CREATE,
    description: 'grow xfs / btrfs; Windows, FreeBSD and NetBSD grow their root filesystem at first boot (below)',
  },
  {
    name: 'AddSwap',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: true },
    families: LINUX,
    requires: ['swap'],
    operations: CREATE,
    description: '`mkswap` on the `SWAP` partition or disk (`SWAP=b`: the whole second disk), fstab entry by UUID',
  },
  {
    name: 'AssignHostname',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: true },
    families: ALL,
    requires: [],
    operations: CREATE_RENAME,
    description:
      'hostname per distribution, `/etc/hosts` (also with `CLOUD_INIT`, unlike upstream, which only gives cloud-init the name: so `/etc/hosts` names the host and `hostname -f` works as in files mode)',
  },
  {
    name: 'ChangeMachineId',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: true },
    families: LINUX,
    requires: [],
    operations: CREATE,
    description: 'new `/etc/machine-id`',
  },
  {
    name: 'ChangePassword',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: true, overwritable: true },
    families: ALL,
    requires: ['password-or-keys'],
    operations: CREATE,
    description:
      '`img_passwd` hashed in the helper (yescrypt where the guest supports it, else sha512; `PASSWD_HASHING_METHOD`), `img_passwd_hash` as given, `auth_keys` appended',
  },
  {
    name: 'ConfigureNetwork',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: true },
    families: LINUX_BSD,
    requires: [],
    operations: CREATE,
    description:
      "each NIC, matched by MAC address and named `snf<i>`: static IPv4 or DHCP, SLAAC / DHCPv6 (`DHCP_TAGS`, `*_DHCPV6_TAGS`, `DEFAULT_NIC_CONFIG`), for netplan, NetworkManager, systemd-networkd, ifupdown or ifcfg; replaced files kept as `<file>.snf-image-<time>`; the image's own configuration set aside (e.g. the catch-all netplan file of cloud images). With `CLOUD_INIT` the same, and cloud-init told to leave the network alone, as upstream's 50ConfigureNetwork; only for a network system it does not know, the seed gets a network-config (v2, by MAC) for cloud-init",
  },
  {
    name: 'DeleteSSHKeys',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: true, overwritable: true },
    families: LINUX_BSD,
    requires: [],
    operations: CREATE,
    description: 'new host keys of every type sshd uses',
  },
  {
    name: 'SELinuxAutorelabel',
    order: 50,
    runAfter: ['MountImage'],
    runBefore: ['EnforcePersonality'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: true },
    families: LINUX,
    requires: [],
    operations: CREATE,
    description: '`/.autorelabel` on Red Hat family guests',
  },
  {
    name: 'DisableRemoteDesktopConnections',
    order: 50,
    runAfter: ['InstallUnattend'],
    runBefore: ['EnforcePersonality'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: true, overwritable: true },
    families: WINDOWS,
    requires: [],
    operations: CREATE,
    description: 'Remote Desktop denied until first boot has run',
  },
  {
    name: 'EnforcePersonality',
    order: 60,
    runAfter: ['MountImage'],
    runBefore: ['UmountImage'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: true },
    families: ALL,
    requires: ['personality'],
    operations: CREATE,
    description: '`img_personality` files with owner, group, mode',
  },
  {
    name: 'RunCustomTask',
    order: 70,
    runAfter: ['EnforcePersonality'],
    runBefore: ['UmountImage'],
    attributes: { excludable: true, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: true },
    // Every family, as upstream's 70RunCustomTask (it has no OS check).
    families: ALL,
    requires: ['custom-task'],
    operations: CREATE,
    description:
      "the base64 `CUSTOM_TASK` program, run in the helper's sandbox (below) with the guest at `$SNF_IMAGE_TARGET`, upstream's task environment (below) but no secrets, killed after 60 s",
  },
  {
    name: 'UmountImage',
    order: 80,
    runAfter: ['MountImage'],
    runBefore: [],
    attributes: { excludable: false, fsResize: false, mounted: true, cloudInitExcludable: false, overwritable: false },
    bracket: true,
    families: ALL,
    requires: [],
    operations: CREATE_RENAME,
    description: 'unmount',
  },
  {
    name: 'FilesystemResizeAfterUmount',
    order: 81,
    runAfter: ['UmountImage'],
    runBefore: [],
    attributes: { excludable: true, fsResize: true, mounted: false, cloudInitExcludable: true, overwritable: false },
    families: WINDOWS,
    requires: [],
    operations: CREATE,
    description: '`ntfsresize` with `OFFLINE_NTFSRESIZE` (and Windows XP / 2003)',
  },
] as const satisfies readonly TaskDeclaration[];

export type TaskName = (typeof TASK_SPECS)[number]['name'];
