/**
 * Windows-shaped test disks (no Windows image can be had here): an NTFS volume made with
 * mkntfs behind an MBR (type 7) or GPT (basic data) partition table, holding the directory
 * tree and the SYSTEM / SOFTWARE / SAM registry hives with the values snf-image reads, and
 * optionally the image's answer file. Hives start as a minimal valid `regf` file written
 * here (hivex cannot create one) and are filled with hivexsh. The NTFS volume is populated
 * through an ntfs-3g mount on the host: the fixture is ours, not an untrusted image.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function windowsToolsSkipReason(): string | false {
  for (const tool of ['mkntfs', 'ntfs-3g', 'hivexsh', 'hivexget', 'ntfsinfo']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return `${tool} is not installed (apt-get install ntfs-3g libhivex-bin)`;
  }
  return false;
}

/**
 * A hive with only a root key: the base block (header) and one 4 KiB hive bin holding the
 * root `nk` cell, its security `sk` cell and one free cell. Layout as documented in
 * "Windows registry file format specification" (msuhanov/regf).
 */
export function emptyHive(rootName = 'ROOT'): Buffer {
  const buf = Buffer.alloc(0x2000);
  buf.write('regf', 0, 'latin1');
  buf.writeUInt32LE(1, 0x04); // primary sequence number
  buf.writeUInt32LE(1, 0x08); // secondary sequence number (equal: the hive is consistent)
  buf.writeUInt32LE(1, 0x14); // major version
  buf.writeUInt32LE(3, 0x18); // minor version
  buf.writeUInt32LE(0, 0x1c); // primary file
  buf.writeUInt32LE(1, 0x20); // direct memory load format
  buf.writeUInt32LE(0x20, 0x24); // root cell offset (relative to the first hive bin)
  buf.writeUInt32LE(0x1000, 0x28); // hive bins data size
  buf.writeUInt32LE(1, 0x2c); // clustering factor
  let checksum = 0;
  for (let i = 0; i < 0x1fc; i += 4) checksum ^= buf.readUInt32LE(i);
  buf.writeUInt32LE(checksum >>> 0, 0x1fc);

  const bin = 0x1000;
  buf.write('hbin', bin, 'latin1');
  buf.writeUInt32LE(0, bin + 4); // offset of this bin
  buf.writeUInt32LE(0x1000, bin + 8); // size of this bin

  const nkRel = 0x20;
  const nk = bin + nkRel;
  const nkSize = (80 + rootName.length + 7) & ~7;
  const skRel = nkRel + nkSize;
  buf.writeInt32LE(-nkSize, nk); // negative: allocated
  buf.write('nk', nk + 4, 'latin1');
  buf.writeUInt16LE(0x2c, nk + 6); // KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME
  buf.writeUInt32LE(0xffffffff, nk + 20); // parent
  buf.writeUInt32LE(0xffffffff, nk + 32); // subkeys list
  buf.writeUInt32LE(0xffffffff, nk + 36); // volatile subkeys list
  buf.writeUInt32LE(0xffffffff, nk + 44); // values list
  buf.writeUInt32LE(skRel, nk + 48); // security
  buf.writeUInt32LE(0xffffffff, nk + 52); // class name
  buf.writeUInt16LE(rootName.length, nk + 76);
  buf.write(rootName, nk + 80, 'latin1');

  const sk = bin + skRel;
  // Self-relative security descriptor without owner, group or ACLs.
  const descriptor = Buffer.from([1, 0, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const skSize = (24 + descriptor.length + 7) & ~7;
  buf.writeInt32LE(-skSize, sk);
  buf.write('sk', sk + 4, 'latin1');
  buf.writeUInt32LE(skRel, sk + 8); // flink: the only sk cell
  buf.writeUInt32LE(skRel, sk + 12); // blink
  buf.writeUInt32LE(1, sk + 16); // reference count
  buf.writeUInt32LE(descriptor.length, sk + 20);
  descriptor.copy(buf, sk + 24);

  const freeRel = skRel + skSize;
  buf.writeInt32LE(0x1000 - freeRel, bin + freeRel); // positive: free
  return buf;
}

export type HiveValue = string | number;

/** Keys (\A\B) → values (strings as REG_SZ, numbers as REG_DWORD); keys without values too. */
export type HiveContent = Record<string, Record<string, HiveValue>>;

export function writeHive(path: string, content: HiveContent): void {
  writeFileSync(path, emptyHive());
  const script: string[] = [];
  const made = new Set<string>(['']);
  for (const [key, values] of Object.entries(content)) {
    const parts = key.split('\\').filter(Boolean);
    for (let i = 0; i < parts.length; i++) {
      const path = parts.slice(0, i + 1).join('\\');
      if (made.has(path.toLowerCase())) continue;
      script.push(`cd \\${parts.slice(0, i).join('\\')}`, `add ${parts[i]}`);
      made.add(path.toLowerCase());
    }
    const entries = Object.entries(values);
    if (entries.length === 0) continue;
    script.push(`cd \\${parts.join('\\')}`, `setval ${entries.length}`);
    for (const [name, value] of entries)
      script.push(name, typeof value === 'number' ? `dword:${value}` : `string:${value}`);
  }
  script.push('commit', '');
  execFileSync('hivexsh', ['-w', path], { input: script.join('\n') });
}

export interface WindowsGuestOptions {
  label: 'dos' | 'gpt';
  /** NT version: '10.0' (Windows 10 / 2016+), '6.1' (7 / 2008 R2), '5.1' (XP), '5.2' (2003). */
  version: string;
  arch?: 'AMD64' | 'x86';
  /** false: an image sysprep did not generalize. */
  generalized?: boolean;
  /** fDenyTSConnections of the image (undefined: the value is absent). */
  denyTsConnections?: number;
  /** The image's own answer file: C:\unattend.xml (Vista+) or C:\sysprep\sysprep.inf (legacy). */
  answerFile?: string;
  /** A hiberfil.sys of a hibernated Windows. */
  hibernated?: boolean;
  /** Accounts in the SAM. */
  users?: string[];
  ntfsMiB?: number;
  diskMiB?: number;
  /** A first, 8 MiB "System Reserved" NTFS partition (boot files, no Windows directory), as Windows 7 and later install on MBR. */
  systemReserved?: boolean;
}

const FIRST_SECTOR = 2048;
const RESERVED_MIB = 8;

/** Start sector of the Windows (C:) partition. */
export function windowsStartSector(o: Pick<WindowsGuestOptions, 'systemReserved'>): number {
  return o.systemReserved ? FIRST_SECTOR + RESERVED_MIB * 2048 : FIRST_SECTOR;
}

export function windowsHives(o: WindowsGuestOptions): { system: HiveContent; software: HiveContent; sam: HiveContent } {
  const legacy = Number(o.version.split('.')[0]) < 6;
  const generalized = o.generalized ?? true;
  const currentVersion: Record<string, HiveValue> =
    Number(o.version.split('.')[0]) >= 10
      ? {
          CurrentVersion: '6.3',
          CurrentMajorVersionNumber: 10,
          CurrentMinorVersionNumber: Number(o.version.split('.')[1]),
          ProductName: 'Windows 10 Pro',
        }
      : { CurrentVersion: o.version, ProductName: legacy ? 'Microsoft Windows XP' : 'Windows 7 Professional' };
  const terminalServer: Record<string, HiveValue> = {
    TSEnabled: 1,
    ...(o.denyTsConnections !== undefined ? { fDenyTSConnections: o.denyTsConnections } : {}),
    ProductVersion: '5.1',
  };
  return {
    system: {
      '\\Select': { Current: 1, Default: 1, LastKnownGood: 2 },
      '\\ControlSet001\\Control\\Session Manager\\Environment': {
        PROCESSOR_ARCHITECTURE: o.arch ?? 'AMD64',
        OS: 'Windows_NT',
      },
      '\\ControlSet001\\Control\\Terminal Server': terminalServer,
      '\\ControlSet002\\Control\\Terminal Server': { fDenyTSConnections: 7 },
      '\\Setup': legacy
        ? { SystemSetupInProgress: generalized ? 1 : 0, MiniSetupInProgress: generalized ? 1 : 0 }
        : { SystemSetupInProgress: 0 },
    },
    software: {
      '\\Microsoft\\Windows NT\\CurrentVersion': currentVersion,
      '\\Microsoft\\Windows\\CurrentVersion\\Setup\\State': legacy
        ? {}
        : { ImageState: generalized ? 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE' : 'IMAGE_STATE_COMPLETE' },
    },
    sam: Object.fromEntries(
      (o.users ?? ['Administrator', 'Guest']).map((u) => [`\\SAM\\Domains\\Account\\Users\\Names\\${u}`, {}]),
    ),
  };
}

/** Writes a Windows-shaped disk image to `path`. */
export function makeWindowsGuest(path: string, o: WindowsGuestOptions): void {
  const work = mkdtempSync(join(tmpdir(), 'snf-wfix-'));
  const mnt = join(work, 'mnt');
  const ntfs = join(work, 'ntfs.img');
  const ntfsMiB = o.ntfsMiB ?? 48;
  let mounted = false;
  try {
    mkdirSync(mnt);
    execFileSync('truncate', ['-s', `${ntfsMiB}M`, ntfs]);
    execFileSync(
      'mkntfs',
      ['-F', '-Q', '-q', '-L', 'Windows', '-p', String(windowsStartSector(o)), '-H', '255', '-S', '63', ntfs],
      { stdio: 'ignore' },
    );
    execFileSync('ntfs-3g', [ntfs, mnt]);
    mounted = true;
    const legacy = Number(o.version.split('.')[0]) < 6;
    for (const d of [
      'Windows/System32/config',
      'Windows/Setup/Scripts',
      'Windows/Panther',
      legacy ? 'Documents and Settings/Administrator' : 'Users/Administrator',
      ...(legacy ? ['sysprep/i386'] : []),
    ])
      mkdirSync(join(mnt, d), { recursive: true });
    const hives = windowsHives(o);
    writeHive(join(mnt, 'Windows/System32/config/SYSTEM'), hives.system);
    writeHive(join(mnt, 'Windows/System32/config/SOFTWARE'), hives.software);
    writeHive(join(mnt, 'Windows/System32/config/SAM'), hives.sam);
    writeFileSync(join(mnt, 'Windows/System32/ntoskrnl.exe'), 'MZ not really a kernel\n');
    mkdirSync(join(mnt, 'Windows/System32/drivers/etc'), { recursive: true });
    writeFileSync(join(mnt, 'Windows/System32/drivers/etc/hosts'), '127.0.0.1 localhost\r\n');
    if (o.answerFile !== undefined)
      writeFileSync(join(mnt, legacy ? 'sysprep/sysprep.inf' : 'unattend.xml'), o.answerFile);
    if (o.hibernated) {
      const hiber = Buffer.alloc(8192);
      hiber.write('HIBR', 0, 'latin1');
      writeFileSync(join(mnt, 'hiberfil.sys'), hiber);
    }
  } finally {
    if (mounted) execFileSync('umount', [mnt]);
    waitNoNtfs3g(ntfs);
  }
  try {
    const reserved = o.systemReserved ? RESERVED_MIB : 0;
    const diskMiB = o.diskMiB ?? ntfsMiB + reserved + 2;
    writeFileSync(path, Buffer.alloc(0));
    execFileSync('truncate', ['-s', `${diskMiB}M`, path]);
    const type = o.label === 'dos' ? '7' : 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7';
    const reservedLine = o.systemReserved
      ? `start=${FIRST_SECTOR}, size=${RESERVED_MIB * 2048}, type=${type}${o.label === 'dos' ? ', bootable' : ''}\n`
      : '';
    execFileSync('sfdisk', ['-q', path], {
      input: `label: ${o.label}\n${reservedLine}start=${windowsStartSector(o)}, size=${ntfsMiB * 2048}, type=${type}\n`,
    });
    if (o.systemReserved) {
      const sr = join(work, 'reserved.img');
      execFileSync('truncate', ['-s', `${RESERVED_MIB}M`, sr]);
      execFileSync('mkntfs', ['-F', '-Q', '-q', '-L', 'System Reserved', '-p', String(FIRST_SECTOR), sr], {
        stdio: 'ignore',
      });
      execFileSync('dd', [`if=${sr}`, `of=${path}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
    }
    execFileSync('dd', [
      `if=${ntfs}`,
      `of=${path}`,
      'bs=512',
      `seek=${windowsStartSector(o)}`,
      'conv=notrunc',
      'status=none',
    ]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** ntfs-3g keeps writing after umount returns: wait until no process has the image open. */
function waitNoNtfs3g(image: string): void {
  for (let i = 0; i < 600; i++) {
    const r = spawnSync('pgrep', ['-f', `ntfs-3g ${image}`]);
    if (r.status !== 0) return;
    spawnSync('sleep', ['0.1']);
  }
  throw new Error(`ntfs-3g did not exit for ${image}`);
}

/** Mounts the Windows partition of a deployed disk read-only (loop device + ntfs-3g); returns an unmount function. */
export function mountWindowsDisk(disk: string, mountPoint: string, startSector = FIRST_SECTOR): () => void {
  mkdirSync(mountPoint, { recursive: true });
  const loop = execFileSync('losetup', ['-f', '--show', '-r', '-o', String(startSector * 512), disk])
    .toString()
    .trim();
  try {
    execFileSync('ntfs-3g', ['-o', 'ro', loop, mountPoint]);
  } catch (error) {
    execFileSync('losetup', ['-d', loop]);
    throw error;
  }
  return () => {
    execFileSync('umount', [mountPoint]);
    for (let i = 0; i < 100 && spawnSync('pgrep', ['-f', `ntfs-3g -o ro ${loop}`]).status === 0; i++)
      spawnSync('sleep', ['0.1']);
    execFileSync('losetup', ['-d', loop]);
  };
}

/** One value as hivexget prints it. */
export function hiveValue(hive: string, key: string, name: string): string {
  return execFileSync('hivexget', [hive, key, name]).toString().trim();
}
