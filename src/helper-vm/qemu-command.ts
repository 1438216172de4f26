/**
 * The helper VM's QEMU command line, as a pure function of its inputs: no network device
 * at all, no defaults, no user config, seccomp sandbox, an unprivileged user, no display,
 * the helper root read-only, instance disks in order with cache=none and serial numbers,
 * the config media as inherited descriptors (-add-fd, /dev/fdset/N: they have no name),
 * four serial ports (console, result, monitor, debug shell).
 */

export type Accel = 'kvm' | 'tcg';

export interface HelperFiles {
  kernel: string;
  /**
   * The same kernel as an uncompressed ELF vmlinux (PVH entry point), when the helper has
   * one: booted under TCG, where decompressing the bzImage inside the guest costs seconds.
   */
  pvhKernel?: string | undefined;
  initrd: string;
  root: string;
  /** Filesystem of root.img (squashfs or ext4), from the helper manifest. */
  rootFsType: string;
}

export interface QemuCommandInput {
  accel: Accel;
  memoryMiB: number;
  /** A user name, or "uid:gid" (a per-deployment id without an account). */
  user: string;
  /** QEMU >= 9 spells it -run-with user=; older ones -runas. */
  userOption: 'run-with' | 'runas';
  helper: HelperFiles;
  /** The config media as QEMU sees them: descriptor numbers it inherits, opened read-only. */
  media: { floppyFd: number; personalityDiskFd?: number | undefined };
  disks: ReadonlyArray<{ path: string; serial: string }>;
  serial: { console: string; result: string; monitor: string; debug?: string | undefined };
  debug: boolean;
  /** Extra kernel command line words (tests, probes). */
  kernelArgs?: readonly string[];
}

const HELPER_ROOT_SERIAL = 'helper-root';
const FLOPPY_FDSET = 1;
const PERSONALITY_FDSET = 2;

/** QEMU option values escape a comma by doubling it. */
function optionValue(text: string): string {
  return text.replaceAll(',', ',,');
}

export function diskSerial(index: number): string {
  return `snf-disk${index}`;
}

export function kernelCommandLine(input: Pick<QemuCommandInput, 'helper' | 'debug' | 'kernelArgs'>): string {
  return [
    'console=ttyS0,115200',
    'quiet',
    'loglevel=3',
    'panic=-1',
    'oops=panic',
    'tsc=reliable',
    'no_timer_check',
    'i8042.noaux',
    'i8042.nokbd',
    '8250.nr_uarts=4',
    `snf_image_rootfstype=${input.helper.rootFsType}`,
    'snf_image_activate_helper',
    ...(input.debug ? ['snf_image_debug_helper'] : []),
    ...(input.kernelArgs ?? []),
  ].join(' ');
}

/** The PVH vmlinux under TCG when there is one (no in-guest decompression), else the bzImage. */
export function bootKernel(input: Pick<QemuCommandInput, 'accel' | 'helper'>): string {
  return input.accel === 'tcg' && input.helper.pvhKernel !== undefined ? input.helper.pvhKernel : input.helper.kernel;
}

export function qemuArguments(input: QemuCommandInput): string[] {
  const args = [
    '-accel',
    input.accel,
    '-machine',
    'pc',
    // -cpu max under TCG gives the guest RDRAND: without it the helper kernel's random pool
    // is not ready for a long while and salt generation (mkpasswd, ssh-keygen) fails.
    '-cpu',
    input.accel === 'kvm' ? 'host' : 'max',
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-m',
    String(input.memoryMiB),
    '-smp',
    '1',
    // QEMU installs its seccomp filter before it switches to the unprivileged user, so
    // elevateprivileges=deny would kill it at its own setuid(); once switched it holds no
    // capability and cannot regain root, which is what that option guards against.
    '-sandbox',
    'on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny',
    ...(input.userOption === 'run-with' ? ['-run-with', `user=${input.user}`] : ['-runas', input.user]),
    '-kernel',
    bootKernel(input),
    '-initrd',
    input.helper.initrd,
    '-append',
    kernelCommandLine(input),
    '-drive',
    `file=${optionValue(input.helper.root)},format=raw,if=none,id=helper-root,readonly=on`,
    '-device',
    `virtio-blk-pci,drive=helper-root,serial=${HELPER_ROOT_SERIAL}`,
    '-add-fd',
    `fd=${input.media.floppyFd},set=${FLOPPY_FDSET},opaque=config-floppy`,
    '-drive',
    `file=/dev/fdset/${FLOPPY_FDSET},if=floppy,index=0,format=raw,readonly=on`,
  ];
  input.disks.forEach((disk, i) => {
    args.push(
      '-drive',
      `file=${optionValue(disk.path)},format=raw,if=none,id=disk${i},cache=none,discard=unmap`,
      '-device',
      `virtio-blk-pci,drive=disk${i},serial=${disk.serial}`,
    );
  });
  if (input.media.personalityDiskFd !== undefined) {
    args.push('-add-fd', `fd=${input.media.personalityDiskFd},set=${PERSONALITY_FDSET},opaque=personality-disk`);
    args.push(
      '-drive',
      `file=/dev/fdset/${PERSONALITY_FDSET},format=raw,if=none,id=personality,readonly=on`,
      '-device',
      'virtio-blk-pci,drive=personality,serial=snf-personality',
    );
  }
  const ports = [input.serial.console, input.serial.result, input.serial.monitor];
  for (const [i, path] of ports.entries())
    args.push('-chardev', `file,id=serial${i},path=${optionValue(path)}`, '-serial', `chardev:serial${i}`);
  if (input.serial.debug) args.push('-chardev', `pty,id=serial3`, '-serial', 'chardev:serial3');
  return args;
}
