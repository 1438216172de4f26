/**
 * Small synthetic Linux guest disks made without mounting anything: a root tree written
 * into an ext4 image with mke2fs -d, placed behind an MBR or GPT made with sfdisk. Enough
 * for the helper's tasks (os-release, fstab, passwd/shadow, hostname, ssh host keys).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SyntheticGuest {
  image: string;
  rootUuid: string;
  hostKeyFingerprint: string;
}

export interface GuestOptions {
  label?: 'dos' | 'gpt';
  osRelease?: string;
  /** fstab root source; default UUID=<root uuid>. */
  fstab?: (rootUuid: string) => string;
  rootMiB?: number;
  diskMiB?: number;
  files?: Record<string, string>;
  /** Files written with mode 0755 (e.g. a static busybox for programs run in the guest). */
  executables?: Record<string, string | Buffer>;
}


export function makeSyntheticGuest(path: string, options: GuestOptions = {}): SyntheticGuest {
  const work = mkdtempSync(join(tmpdir(), 'snf-synth-'));
  try {
    const tree = join(work, 'tree');
    for (const d of ['etc/ssh', 'root', 'home/user', 'var/lib/dbus']) mkdirSync(join(tree, d), { recursive: true });
    const uuid = execFileSync('cat', ['/proc/sys/kernel/random/uuid']).toString().trim();
    const files: Record<string, string> = {
      'etc/os-release': options.osRelease ?? 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
      'etc/fstab': (options.fstab ?? ((u: string) => `UUID=${u} / ext4 errors=remount-ro 0 1\n`))(uuid),
      'etc/passwd': 'root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000:User:/home/user:/bin/bash\n',
      'etc/group': 'root:x:0:\nuser:x:1000:\n',
      'etc/shadow': 'root:$6$template$UcVbkp2JvJ0p1dnn6pquTc0Tz3Vbl6F8dZo0xBfwk3bd5.J4DV4lA9S/VSEu3P3r4WK1s3E/EaQ.k0UXq6n.R.:19000:0:99999:7:::\nuser:!:19000:0:99999:7:::\n',
      'etc/hostname': 'template-host\n',
      'etc/hosts': '127.0.0.1\tlocalhost\n127.0.1.1\ttemplate-host\n',
      'etc/machine-id': 'f'.repeat(32) + '\n',
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
    chmodSync(join(tree, 'etc/shadow'), 0o640);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(tree, 'etc/ssh/ssh_host_ed25519_key')]);
    const fingerprint = execFileSync('ssh-keygen', ['-l', '-f', join(tree, 'etc/ssh/ssh_host_ed25519_key.pub')]).toString().split(' ')[1] ?? '';
    const rootMiB = options.rootMiB ?? 48;
    const fs = join(work, 'root.ext4');
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-U', uuid, '-d', tree, fs, `${rootMiB}M`]);
    const diskMiB = options.diskMiB ?? rootMiB + 2;
    writeFileSync(path, Buffer.alloc(0));
    execFileSync('truncate', ['-s', `${diskMiB}M`, path]);
    const label = options.label ?? 'dos';
    execFileSync('sfdisk', ['-q', path], { input: `label: ${label}\nstart=2048, size=${rootMiB * 2048}, type=${label === 'dos' ? '83' : '0FC63DAF-8483-4772-8E79-3D69D8477DE4'}\n` });
    execFileSync('dd', [`if=${fs}`, `of=${path}`, 'bs=1M', `seek=${1}`, 'conv=notrunc', 'status=none']);
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
    return execFileSync('debugfs', ['-R', `cat ${guestPath}`, part], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } finally {
    rmSync(part, { force: true });
  }
}
