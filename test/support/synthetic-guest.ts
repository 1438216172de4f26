/**
 * Small synthetic Linux guest disks made without mounting anything: a root tree written
 * into an ext4 (mke2fs -d), btrfs (mkfs.btrfs --rootdir) or xfs (mkfs.xfs -p prototype)
 * image, placed behind an MBR (primary or logical partition) or GPT made with sfdisk.
 * Enough for the helper's tasks (os-release, fstab, passwd/shadow, hostname, ssh host keys).
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SyntheticGuest {
  image: string;
  rootUuid: string;
  hostKeyFingerprint: string;
}

export interface GuestOptions {
  label?: 'dos' | 'gpt';
  /** /etc/os-release; null: none (older images). */
  osRelease?: string | null;
  /** fstab root source; default UUID=<root uuid>. */
  fstab?: (rootUuid: string) => string;
  rootMiB?: number;
  diskMiB?: number;
  files?: Record<string, string>;
  /** Files written with mode 0755 (e.g. a static busybox for programs run in the guest). */
  executables?: Record<string, string | Buffer>;
  /** Symbolic links: path in the tree -> link target (planted links of hostile images). */
  links?: Record<string, string>;
  rootFs?: RootFs;
  /** 'logical': the root is partition 5 inside extended partition 1 (MBR only). */
  layout?: 'primary' | 'logical';
  /**
   * The root filesystem in logical volume `root` of this volume group, whose physical volume
   * is the root partition (4 MiB larger than the volume); fstab names /dev/mapper/<vg>-root.
   */
  lvmVolumeGroup?: string;
}

const LVM_EXTRA_MIB = 4;

/**
 * A physical volume image holding volume group `vg` with logical volume `root` of `mib` MiB
 * (not activated: the host needs no device-mapper), and the volume's byte offset in it.
 */
function makePhysicalVolume(file: string, vg: string, mib: number): number {
  execFileSync('truncate', ['-s', `${mib + LVM_EXTRA_MIB}M`, file]);
  const loop = execFileSync('losetup', ['-f', '--show', file]).toString().trim();
  try {
    const config = `devices { filter = [ "a|^${loop}$|", "r|.*|" ] use_devicesfile = 0 } global { activation = 0 } backup { backup = 0 archive = 0 }`;
    const lvm = (args: string[]) =>
      execFileSync('lvm', [args[0] as string, '--config', config, ...args.slice(1)], {
        stdio: ['ignore', 'pipe', 'ignore'],
      }).toString();
    lvm(['pvcreate', '-q', loop]);
    lvm(['vgcreate', '-q', '-s', '4M', vg, loop]);
    lvm(['lvcreate', '-q', '-an', '-Zn', '-y', '-n', 'root', '-L', `${mib}M`, vg]);
    return Number(lvm(['pvs', '--noheadings', '--units', 'b', '--nosuffix', '-o', 'pe_start', loop]).trim());
  } finally {
    execFileSync('losetup', ['-d', loop]);
  }
}

export type RootFs = 'ext4' | 'btrfs' | 'xfs';

/** First sector of the root partition of a guest made with these options. */
export function rootStartSector(options: Pick<GuestOptions, 'layout'> = {}): number {
  return options.layout === 'logical' ? 4096 : 2048;
}

/** mkfs.xfs prototype of a directory tree (regular files, directories, symbolic links). */
function xfsPrototype(dir: string, depth = 0): string[] {
  const pad = ' '.repeat(depth + 1);
  const lines: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
    if (st.isSymbolicLink()) lines.push(`${pad}${name} l--${mode} 0 0 ${readlinkSync(path)}`);
    else if (st.isDirectory()) lines.push(`${pad}${name} d--${mode} 0 0`, ...xfsPrototype(path, depth + 1), `${pad}$`);
    else lines.push(`${pad}${name} ---${mode} 0 0 ${path}`);
  }
  return lines;
}

function makeFilesystem(type: RootFs, tree: string, image: string, uuid: string, mib: number, work: string): void {
  if (type === 'ext4') {
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-U', uuid, '-d', tree, image, `${mib}M`]);
    return;
  }
  execFileSync('truncate', ['-s', `${mib}M`, image]);
  if (type === 'btrfs') {
    execFileSync('mkfs.btrfs', ['-q', '-f', '-M', '-U', uuid, '--rootdir', tree, image], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return;
  }
  const proto = join(work, 'xfs.proto');
  writeFileSync(proto, ['/dev/null', '0 0', 'd--755 0 0', ...xfsPrototype(tree), '$', ''].join('\n'));
  // mkfs.xfs refuses filesystems under 300 MB unless it runs for fstests (these variables).
  execFileSync('mkfs.xfs', ['-q', '-f', '-m', `uuid=${uuid}`, '-p', proto, image], {
    env: { ...process.env, TEST_DIR: work, TEST_DEV: image, QA_CHECK_FS: '1' },
  });
}

export function makeSyntheticGuest(path: string, options: GuestOptions = {}): SyntheticGuest {
  const work = mkdtempSync(join(tmpdir(), 'snf-synth-'));
  try {
    const tree = join(work, 'tree');
    for (const d of ['etc/ssh', 'root', 'home/user', 'var/lib/dbus']) mkdirSync(join(tree, d), { recursive: true });
    const uuid = execFileSync('cat', ['/proc/sys/kernel/random/uuid']).toString().trim();
    const files: Record<string, string> = {
      ...(options.osRelease === null
        ? {}
        : {
            'etc/os-release':
              options.osRelease ?? 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
          }),
      'etc/fstab': (
        options.fstab ??
        ((u: string) =>
          `${options.lvmVolumeGroup ? `/dev/mapper/${options.lvmVolumeGroup.replace(/-/g, '--')}-root` : `UUID=${u}`} / ${options.rootFs ?? 'ext4'} defaults 0 1\n`)
      )(uuid),
      'etc/passwd': 'root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000:User:/home/user:/bin/bash\n',
      'etc/group': 'root:x:0:\nuser:x:1000:\n',
      'etc/shadow':
        'root:$6$template$UcVbkp2JvJ0p1dnn6pquTc0Tz3Vbl6F8dZo0xBfwk3bd5.J4DV4lA9S/VSEu3P3r4WK1s3E/EaQ.k0UXq6n.R.:19000:0:99999:7:::\nuser:!:19000:0:99999:7:::\n',
      'etc/hostname': 'template-host\n',
      'etc/hosts': '127.0.0.1\tlocalhost\n127.0.1.1\ttemplate-host\n',
      'etc/machine-id': `${'f'.repeat(32)}\n`,
      'etc/ssh/sshd_config': 'PermitRootLogin yes\n',
      ...options.files,
    };
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(join(tree, name, '..'), { recursive: true });
      writeFileSync(join(tree, name), content);
    }
    for (const [name, content] of Object.entries(options.executables ?? {})) {
      mkdirSync(join(tree, name, '..'), { recursive: true });
      writeFileSync(join(tree, name), content, { mode: 0o755 });
    }
    for (const [name, target] of Object.entries(options.links ?? {})) {
      mkdirSync(join(tree, name, '..'), { recursive: true });
      rmSync(join(tree, name), { force: true });
      symlinkSync(target, join(tree, name));
    }
    if (!options.links?.['etc/shadow']) chmodSync(join(tree, 'etc/shadow'), 0o640);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(tree, 'etc/ssh/ssh_host_ed25519_key')]);
    const fingerprint =
      execFileSync('ssh-keygen', ['-l', '-f', join(tree, 'etc/ssh/ssh_host_ed25519_key.pub')])
        .toString()
        .split(' ')[1] ?? '';
    const rootMiB = options.rootMiB ?? 48;
    const fs = join(work, 'root.fs');
    makeFilesystem(options.rootFs ?? 'ext4', tree, fs, uuid, rootMiB, work);
    const start = rootStartSector(options);
    const partitionMiB = rootMiB + (options.lvmVolumeGroup ? LVM_EXTRA_MIB : 0);
    const diskMiB = options.diskMiB ?? partitionMiB + start / 2048 + 1;
    writeFileSync(path, Buffer.alloc(0));
    execFileSync('truncate', ['-s', `${diskMiB}M`, path]);
    const label = options.label ?? 'dos';
    const table =
      options.layout === 'logical'
        ? `label: dos\nstart=2048, size=${(partitionMiB + 1) * 2048}, type=5\nstart=${start}, size=${partitionMiB * 2048}, type=83\n`
        : `label: ${label}\nstart=2048, size=${partitionMiB * 2048}, type=${label === 'dos' ? (options.lvmVolumeGroup ? '8e' : '83') : options.lvmVolumeGroup ? 'E6D6D379-F507-44C2-A23C-238F2A3DF928' : '0FC63DAF-8483-4772-8E79-3D69D8477DE4'}\n`;
    execFileSync('sfdisk', ['-q', path], { input: table });
    let fsOffset = start * 512;
    if (options.lvmVolumeGroup) {
      const pv = join(work, 'pv.img');
      const volumeOffset = makePhysicalVolume(pv, options.lvmVolumeGroup, rootMiB);
      execFileSync('dd', [
        `if=${pv}`,
        `of=${path}`,
        'bs=1M',
        `seek=${fsOffset}`,
        'oflag=seek_bytes',
        'conv=notrunc',
        'status=none',
      ]);
      fsOffset += volumeOffset;
    }
    execFileSync('dd', [
      `if=${fs}`,
      `of=${path}`,
      'bs=1M',
      `seek=${fsOffset}`,
      'oflag=seek_bytes',
      'conv=notrunc',
      'status=none',
    ]);
    return { image: path, rootUuid: uuid, hostKeyFingerprint: fingerprint };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Reads files of a deployed disk's first partition without mounting (debugfs). */
export function readGuestFile(disk: string, guestPath: string, partitionStartSector = 2048): string {
  const part = `${disk}.p1`;
  execFileSync('dd', [`if=${disk}`, `of=${part}`, 'bs=512', `skip=${partitionStartSector}`, 'status=none']);
  try {
    return execFileSync('debugfs', ['-R', `cat ${guestPath}`, part], {
      stdio: ['ignore', 'pipe', 'ignore'],
    }).toString();
  } finally {
    rmSync(part, { force: true });
  }
}
