/**
 * The image formats img_format accepts. diskdump may be compressed (gzip, xz, zstd, bzip2:
 * recognised by magic bytes); the virtual-disk formats are converted with qemu-img.
 */
export interface ImageFormatSpec {
  readonly name: string;
  readonly description: string;
  /** Converted by qemu-img (given this explicit -f). */
  readonly qemuFormat?: string;
  /** A filesystem dump that needs a synthesized partition table in front of it. */
  readonly filesystemDump?: 'ext' | 'ntfs';
}

const IMAGE_FORMATS: readonly ImageFormatSpec[] = [
  { name: 'diskdump', description: 'raw dump of a whole disk (MBR or GPT), optionally gzip/xz/zstd/bzip2 compressed' },
  {
    name: 'extdump',
    description: 'raw dump of one ext2/3/4 filesystem; a partition table is synthesized in front of it',
    filesystemDump: 'ext',
  },
  {
    name: 'ntfsdump',
    description: 'raw dump of one NTFS filesystem; a partition table is synthesized in front of it',
    filesystemDump: 'ntfs',
  },
  { name: 'qcow2', description: 'QEMU qcow2 (no backing file allowed)', qemuFormat: 'qcow2' },
  { name: 'vmdk', description: 'VMware VMDK (monolithic)', qemuFormat: 'vmdk' },
  { name: 'vdi', description: 'VirtualBox VDI', qemuFormat: 'vdi' },
  { name: 'vhdx', description: 'Hyper-V VHDX', qemuFormat: 'vhdx' },
];

export const IMAGE_FORMAT_NAMES: readonly string[] = IMAGE_FORMATS.map((f) => f.name);

export function findImageFormat(name: string): ImageFormatSpec | undefined {
  return IMAGE_FORMATS.find((f) => f.name === name);
}
