/**
 * BSD-shaped test disks, made with Debian's tools only: an FFS/UFS filesystem from a
 * directory tree by makefs (NetBSD's makefs; FFSv1/UFS1 for all three: makefs writes the UFS2
 * superblock at 8 KiB, where FreeBSD's newfs never puts it and Linux does not look),
 * placed in a GPT freebsd-ufs partition (FreeBSD) or in an MBR slice (a6 OpenBSD, a9 NetBSD)
 * whose disklabel this module writes, root 'a' plus swap 'b' as the installers lay them out
 * (or the root alone and last, as the BSDs' VM images have it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDisklabel, FS_BSDFFS, FS_SWAP } from '../../helper/bsd/disklabel.ts';
import type { BsdFamily } from '../../helper/bsd/partition-types.ts';

export const OPENBSD_DUID = '3eb7f9da875cb9ee';

export function bsdToolsSkipReason(): string | false {
  for (const [tool, pkg] of [
    ['makefs', 'makefs'],
    ['sfdisk', 'fdisk'],
    ['sgdisk', 'gdisk'],
  ]) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return `${tool} is not installed (Debian package ${pkg})`;
  }
  return false;
}

export interface BsdGuestLayout {
  family: BsdFamily;
  /** Sectors of the whole image. */
  sectors: number;
  /** Where the root partition starts (the slice, or the GPT partition). */
  rootStart: number;
  rootSize: number;
  /** For hostile labels: the 'a' size written into the label (default rootSize). */
  labelRootSize?: number;
  /** FreeBSD: a freebsd-ufs partition without /etc/fstab (a separate /var) before the root. */
  varFirst?: boolean;
  /** No swap partition: the root is the last partition (as in the BSDs' VM images), so it is the one that grows. */
  rootLast?: boolean;
}

export const LAYOUTS: Readonly<Record<BsdFamily, BsdGuestLayout>> = {
  freebsd: { family: 'freebsd', sectors: 65_536, rootStart: 4096, rootSize: 40_960 },
  openbsd: { family: 'openbsd', sectors: 65_536, rootStart: 64, rootSize: 40_960 },
  netbsd: { family: 'netbsd', sectors: 65_536, rootStart: 63, rootSize: 40_960 },
};

const SWAP_SECTORS = 8192;

function fstab(family: BsdFamily, rootNumber: number, swap: boolean): string {
  if (family === 'freebsd')
    return `# Device\tMountpoint\tFStype\tOptions\tDump\tPass#\n/dev/vtbd0p${rootNumber}\t/\tufs\trw\t1\t1\n${swap ? `/dev/vtbd0p${rootNumber + 1}\tnone\tswap\tsw\t0\t0\n` : ''}`;
  if (family === 'openbsd') return `${OPENBSD_DUID}.a / ffs rw 1 1\n${swap ? `${OPENBSD_DUID}.b none swap sw\n` : ''}`;
  return `/dev/wd0a / ffs rw,log 1 1\n${swap ? '/dev/wd0b none swap sw 0 0\n' : ''}`;
}

function tree(family: BsdFamily, rootNumber: number, swap: boolean): string {
  const root = mkdtempSync(join(tmpdir(), `snf-${family}-tree-`));
  const etc = join(root, 'etc');
  mkdirSync(join(etc, 'ssh'), { recursive: true });
  writeFileSync(join(etc, 'fstab'), fstab(family, rootNumber, swap));
  writeFileSync(join(etc, 'rc.conf'), family === 'openbsd' ? '' : 'hostname="template-host"\nsshd_enable="YES"\n');
  if (family !== 'freebsd') writeFileSync(join(etc, 'myname'), 'template-host\n');
  writeFileSync(join(etc, 'master.passwd'), 'root:*:0:0:daemon:0:0:Charlie &:/root:/bin/sh\n', { mode: 0o600 });
  writeFileSync(join(etc, 'passwd'), 'root:*:0:0:Charlie &:/root:/bin/sh\n');
  writeFileSync(join(etc, 'group'), 'wheel:*:0:root\noperator:*:5:root\n');
  writeFileSync(join(etc, 'spwd.db'), 'stale database\n', { mode: 0o600 });
  writeFileSync(join(etc, 'ssh/ssh_host_ed25519_key'), 'old key\n', { mode: 0o600 });
  mkdirSync(join(root, 'root'));
  return root;
}

function writeAt(file: string, position: number, data: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, data, 0, data.length, position);
  } finally {
    closeSync(fd);
  }
}

/** Writes the guest disk image to `path`. */
export function makeBsdGuest(path: string, layout: BsdGuestLayout): void {
  const { family, sectors, rootStart, rootSize } = layout;
  const work = mkdtempSync(join(tmpdir(), `snf-${family}-fs-`));
  const swap = !layout.rootLast;
  const source = tree(family, layout.varFirst ? 3 : 2, swap);
  try {
    const fs = join(work, 'root.ffs');
    const ffsSectors = family === 'freebsd' || !swap ? rootSize : rootSize - SWAP_SECTORS;
    execFileSync('makefs', ['-t', 'ffs', '-o', 'version=1', '-s', String(ffsSectors * 512), fs, source], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    rmSync(path, { force: true });
    execFileSync('truncate', ['-s', String(sectors * 512), path]);
    if (family === 'freebsd') {
      const varPart = layout.varFirst ? ['-n', '2:3072:+1024', '-t', '2:a503'] : [];
      const n = layout.varFirst ? 3 : 2;
      const swapPart = swap ? ['-n', `${n + 1}:0:+2M`, '-t', `${n + 1}:a502`] : [];
      execFileSync(
        'sgdisk',
        [
          '-a',
          '1',
          '-n',
          '1:2048:+512K',
          '-t',
          '1:a501',
          ...varPart,
          '-n',
          `${n}:${rootStart}:+${rootSize}`,
          '-t',
          `${n}:a503`,
          ...swapPart,
          path,
        ],
        { stdio: 'ignore' },
      );
      writeAt(path, rootStart * 512, readFileSync(fs));
      if (layout.varFirst) {
        const varTree = mkdtempSync(join(tmpdir(), 'snf-freebsd-var-'));
        mkdirSync(join(varTree, 'log'));
        execFileSync(
          'makefs',
          ['-t', 'ffs', '-o', 'version=1', '-s', String(1024 * 512), join(work, 'var.ffs'), varTree],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        rmSync(varTree, { recursive: true, force: true });
        writeAt(path, 3072 * 512, readFileSync(join(work, 'var.ffs')));
      }
      return;
    }
    const type = family === 'openbsd' ? 'a6' : 'a9';
    execFileSync('sfdisk', ['-q', path], {
      input: `label: dos\nstart=${rootStart}, size=${rootSize}, type=${type}, bootable\n`,
    });
    writeAt(path, rootStart * 512, readFileSync(fs));
    const label = buildDisklabel({
      flavour: family,
      sliceStart: rootStart,
      sliceSize: rootSize,
      diskSectors: sectors,
      ...(family === 'openbsd' ? { duid: OPENBSD_DUID } : {}),
      partitions: [
        { letter: 'a', start: rootStart, size: layout.labelRootSize ?? ffsSectors, fstype: FS_BSDFFS },
        ...(swap ? [{ letter: 'b', start: rootStart + ffsSectors, size: SWAP_SECTORS, fstype: FS_SWAP }] : []),
      ],
    });
    writeAt(path, rootStart * 512 + 512, label);
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(source, { recursive: true, force: true });
  }
}

export function readSector(path: string, sector: number, count = 1): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(512 * count);
    readSync(fd, b, 0, b.length, sector * 512);
    return b;
  } finally {
    closeSync(fd);
  }
}
