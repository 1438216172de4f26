/**
 * extdump / ntfsdump: a filesystem dump gets a synthesized 1 MiB prefix holding an MBR with
 * one bootable partition at sector 2048 that spans the filesystem, as upstream does. The
 * boot code is syslinux's generic MBR when installed (it chain-loads the active partition,
 * whose boot sector the dump carries).
 */
import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../util/errors.ts';

export const PREFIX_BYTES = 2048 * 512;
const BOOT_CODE_FILES = ['/usr/lib/syslinux/mbr/mbr.bin', '/usr/lib/SYSLINUX/mbr.bin', '/usr/share/syslinux/mbr.bin'];

export function bootCode(): Buffer | undefined {
  const file = BOOT_CODE_FILES.find((f) => existsSync(f));
  if (!file) return undefined;
  const code = readFileSync(file);
  return code.byteLength >= 440 ? code.subarray(0, 440) : code;
}

/** An MBR partition entry counts sectors in 32 bits: at most 2 TiB. */
const MAX_MBR_SECTORS = 0xffffffff;

/** The 1 MiB prefix: MBR (boot code, one partition entry, signature) and zeros. */
export function synthesizePrefix(filesystemBytes: number, kind: 'ext' | 'ntfs', code: Buffer | undefined): Buffer {
  const sectors = Math.ceil(filesystemBytes / 512);
  if (sectors > MAX_MBR_SECTORS)
    throw new UserError(
      `img_id: the ${kind} filesystem (${filesystemBytes} bytes) is larger than an MBR partition can hold (2 TiB)`,
    );
  const prefix = Buffer.alloc(PREFIX_BYTES);
  code?.copy(prefix, 0, 0, Math.min(440, code.byteLength));
  const entry = 446;
  prefix[entry] = 0x80; // bootable
  prefix.set([0xfe, 0xff, 0xff], entry + 1); // CHS start: use LBA
  prefix[entry + 4] = kind === 'ext' ? 0x83 : 0x07;
  prefix.set([0xfe, 0xff, 0xff], entry + 5); // CHS end: use LBA
  prefix.writeUInt32LE(2048, entry + 8);
  prefix.writeUInt32LE(sectors, entry + 12);
  prefix[510] = 0x55;
  prefix[511] = 0xaa;
  return prefix;
}
