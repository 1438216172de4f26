/**
 * The sandbox of the programs the helper runs on behalf of others: the administrator's
 * CUSTOM_TASK and the image's task overrides. They keep uid 0 (they edit the guest as
 * upstream's did) but nothing else of the helper's power:
 *
 * - their own mount namespace (private) and PID namespace (unshare): the helper's PID 1,
 *   which holds the serial ports open, is not visible, and whatever the program leaves
 *   running dies with it;
 * - /dev is a small read-only tmpfs with null, zero, full, random, urandom (no floppy with
 *   the config, no serial port, no disk, nothing can be added); /proc is the namespace's own, read-only (no kernel
 *   setting, no sysrq); /sys is empty; /tmp and /run are fresh: of the helper's files only
 *   the mounted guest stays writable;
 * - no new privileges, securebits noroot (locked), and of the capabilities only chown,
 *   dac_override, fowner and fsetid (bounding, inheritable and ambient sets): no mknod,
 *   mount, raw I/O, ptrace, module loading, network or chroot;
 * - chrooted into the guest (overrides): chroot(8) gets sys_chroot as well, then the
 *   helper's static busybox (bound into the private /dev) drops it before the program runs;
 * - the administrator's CUSTOM_TASK (not the image's programs) also gets what upstream's
 *   custom tasks use: the instance disks and their partitions in its /dev (DEV_<i>: a
 *   bootloader install writes them) and sys_chroot (`chroot "$TARGET" ...`). Neither
 *   reaches the config, the serial ports or the helper: the chroot is taken inside the
 *   sandbox's own mount namespace.
 *
 * A time limit (timeout(1)) kills the whole namespace.
 */
import { run, TaskError, type RunResult } from '../exec.ts';

/** The helper's static busybox: runs inside the guest's chroot without any library of the guest. */
const STATIC_BUSYBOX = '/bin/busybox';
const CAPS = ['chown', 'dac_override', 'fowner', 'fsetid'];
/** Exit status of the set-up script when the sandbox cannot be made (with a "snf-image sandbox:" line). */
const SETUP_FAILED = 125;

const caps = (extra: readonly string[] = []) => ['-all', ...[...CAPS, ...extra].map((c) => `+${c}`)].join(',');
const setpriv = (extra: readonly string[] = []) =>
  `/usr/bin/setpriv --nnp --securebits +noroot,+noroot_locked --bounding-set ${caps(extra)} --inh-caps ${caps(extra)} --ambient-caps ${caps(extra)} --`;

/**
 * Runs as PID 1 of the new namespaces: $1 = chroot device directory ("" when not chrooted),
 * $2 = the guest mount, $3 = extra block devices ("name:major:minor" separated by spaces,
 * names without a slash), then the program (or "--stdin NAME": the program's bytes on
 * stdin) and its arguments. Only constant text: every value comes as an argument.
 */
const SETUP = `set -eu
program_path=$PATH
PATH=/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "snf-image sandbox: $*" >&2; exit ${SETUP_FAILED}; }
chroot_dev=$1 target=$2 devices=$3
shift 3
mount -t tmpfs -o nosuid,noexec,mode=0755,size=64k snf-sandbox-dev /dev || fail "no private /dev"
for d in null:3 zero:5 full:7 random:8 urandom:9; do mknod -m 0666 "/dev/\${d%:*}" c 1 "\${d#*:}" || fail "no /dev/\${d%:*}"; done
for d in $devices; do
  name=\${d%%:*} numbers=\${d#*:}
  case $name in */*|.*|'') fail "bad device name";; esac
  mknod -m 0660 "/dev/$name" b "\${numbers%:*}" "\${numbers#*:}" || fail "no /dev/$name"
done
mkdir /dev/.snf-guest || fail "no staging directory"
mount --rbind "$target" /dev/.snf-guest || fail "cannot bind the guest"
mount -t tmpfs -o nosuid,nodev,mode=1777 snf-sandbox-tmp /tmp || fail "no private /tmp"
mount -t tmpfs -o nosuid,nodev,noexec,mode=0755,size=1m snf-sandbox-run /run || fail "no private /run"
mkdir -p "$target" || fail "no mount point for the guest"
mount --move /dev/.snf-guest "$target" || fail "cannot move the guest back"
rmdir /dev/.snf-guest || fail "staging directory left"
mount -t proc -o ro,nosuid,nodev,noexec snf-sandbox-proc /proc || fail "no private /proc"
mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k snf-sandbox-sys /sys || fail "no empty /sys"
if [ "$1" = --stdin ]; then
  program=/tmp/$2
  shift 2
  cat > "$program" && chmod 0700 "$program" || fail "cannot store the program"
  set -- "$program" "$@"
fi
if [ -z "$chroot_dev" ]; then
  ln -s /proc/self/fd /dev/fd && ln -s fd/0 /dev/stdin && ln -s fd/1 /dev/stdout && ln -s fd/2 /dev/stderr || fail "no /dev/fd"
  mount -o remount,ro /dev || fail "cannot make /dev read-only"
  cd "$target" || fail "cannot enter the guest"
  export PATH="$program_path"
  exec $admin_setpriv "$@" </dev/null
fi
mkdir /dev/.snf-sandbox && touch /dev/.snf-sandbox/busybox && mount --bind ${STATIC_BUSYBOX} /dev/.snf-sandbox/busybox || fail "cannot bind busybox"
mount -o remount,ro /dev || fail "cannot make /dev read-only"
mount --rbind /dev "$chroot_dev" || fail "cannot bind /dev into the guest"
export PATH="$program_path"
exec ${setpriv(['sys_chroot'])} /usr/sbin/chroot "$target" /dev/.snf-sandbox/busybox setpriv --inh-caps -sys_chroot --ambient-caps -sys_chroot -- "$@" </dev/null
`;

export interface SandboxOptions {
  /** Host path of the mounted guest; the program finds it at the same path (or as its root). */
  target: string;
  /** Run chrooted into the guest: host path of the guest's /dev directory (resolved inside the guest). */
  chrootDev?: string;
  env: Record<string, string>;
  timeoutSeconds: number;
  /** The program in error messages. */
  label: string;
  /**
   * The administrator's program (CUSTOM_TASK), not the image's: these block devices
   * (the instance disks and their partitions, by kernel name) and sys_chroot.
   */
  administrator?: { devices: readonly BlockDevice[] };
}

/** A block device of the helper: kernel name (vda, vda1) and "major:minor" (from sysfs). */
export interface BlockDevice {
  name: string;
  majorMinor: string;
}

/** A program given by its bytes (stored in the sandbox's private /tmp under this name). */
export interface ProgramBytes {
  name: string;
  content: Buffer;
}

/**
 * Runs `program` (a path, inside the guest when chrooted; or its bytes) in the sandbox.
 * The exit code is the caller's to judge; a timeout or a sandbox that cannot be set up is
 * an error.
 */
export async function runSandboxed(
  program: string | ProgramBytes,
  args: readonly string[],
  options: SandboxOptions,
): Promise<RunResult> {
  const command = typeof program === 'string' ? [program] : ['--stdin', program.name];
  const admin = options.administrator;
  const devices = admin ? admin.devices.map(deviceSpec).join(' ') : '';
  const script = SETUP.replace('$admin_setpriv', admin ? setpriv(['sys_chroot']) : setpriv());
  const r = await run(
    '/usr/bin/unshare',
    [
      '--mount',
      '--pid',
      '--fork',
      '--kill-child',
      '--propagation',
      'private',
      '/bin/sh',
      '-c',
      script,
      'snf-image-sandbox',
      options.chrootDev ?? '',
      options.target,
      devices,
      ...command,
      ...args,
    ],
    {
      allowFailure: true,
      timeoutSeconds: options.timeoutSeconds,
      label: options.label,
      env: options.env,
      ...(typeof program === 'string' ? {} : { input: program.content }),
    },
  );
  const setup = r.stderr
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('snf-image sandbox: '));
  if (r.code === SETUP_FAILED && setup !== undefined)
    throw new TaskError(`${options.label}: ${setup.replace(/^snf-image /, '')}`);
  return r;
}

function deviceSpec(device: BlockDevice): string {
  if (!/^[a-z][a-z0-9]*$/.test(device.name) || !/^\d+:\d+$/.test(device.majorMinor))
    throw new TaskError(`sandbox: bad block device ${device.name} (${device.majorMinor})`);
  return `${device.name}:${device.majorMinor}`;
}
