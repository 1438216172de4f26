import { open } from 'node:fs/promises';

/**
 * What the first bytes of an image say it is. Used to check the declared img_format, to
 * recognise compression and to refuse files that are something else than declared.
 */
export type Compression = 'gzip' | 'xz' | 'zstd' | 'bzip2';
type Container = 'qcow2' | 'qcow' | 'vmdk' | 'vmdk-descriptor' | 'vdi' | 'vhdx' | 'vhd';
type Content = 'mbr-disk' | 'gpt-disk' | 'ext' | 'ntfs' | 'unknown';

export type Detected =
  | { kind: 'compressed'; compression: Compression }
  | { kind: 'container'; container: Container }
  | { kind: 'raw'; content: Content };

/** Bytes needed to tell every kind apart. */
export const MAGIC_BYTES = 4096;

/** The first MAGIC_BYTES of a file (fewer if it is shorter). */
export async function readFileHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.alloc(MAGIC_BYTES);
    const { bytesRead } = await handle.read(buf, 0, MAGIC_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

const startsWith = (buf: Uint8Array, bytes: readonly number[], offset = 0) =>
  bytes.every((b, i) => buf[offset + i] === b);
const ascii = (buf: Uint8Array, text: string, offset = 0) =>
  startsWith(
    buf,
    [...text].map((c) => c.charCodeAt(0)),
    offset,
  );

export function detect(head: Uint8Array): Detected {
  if (startsWith(head, [0x1f, 0x8b])) return { kind: 'compressed', compression: 'gzip' };
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return { kind: 'compressed', compression: 'xz' };
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return { kind: 'compressed', compression: 'zstd' };
  if (ascii(head, 'BZh') && head[3] !== undefined && head[3] >= 0x31 && head[3] <= 0x39)
    return { kind: 'compressed', compression: 'bzip2' };
  if (startsWith(head, [0x51, 0x46, 0x49, 0xfb])) {
    const version = head.length >= 8 ? new DataView(head.buffer, head.byteOffset).getUint32(4) : 0;
    return { kind: 'container', container: version >= 2 ? 'qcow2' : 'qcow' };
  }
  if (ascii(head, 'KDMV')) return { kind: 'container', container: 'vmdk' };
  if (ascii(head, '# Disk DescriptorFile')) return { kind: 'container', container: 'vmdk-descriptor' };
  if (startsWith(head, [0x7f, 0x10, 0xda, 0xbe], 0x40)) return { kind: 'container', container: 'vdi' };
  if (ascii(head, 'vhdxfile')) return { kind: 'container', container: 'vhdx' };
  if (ascii(head, 'conectix')) return { kind: 'container', container: 'vhd' };
  if (ascii(head, 'EFI PART', 512)) return { kind: 'raw', content: 'gpt-disk' };
  if (ascii(head, 'NTFS    ', 3)) return { kind: 'raw', content: 'ntfs' };
  if (startsWith(head, [0x53, 0xef], 1080)) return { kind: 'raw', content: 'ext' };
  if (startsWith(head, [0x55, 0xaa], 510)) return { kind: 'raw', content: 'mbr-disk' };
  return { kind: 'raw', content: 'unknown' };
}

export function describeDetected(d: Detected): string {
  if (d.kind === 'compressed') return `${d.compression}-compressed data`;
  if (d.kind === 'container')
    return d.container === 'vmdk-descriptor' ? 'a VMDK descriptor (text) file' : `a ${d.container} image`;
  return {
    'mbr-disk': 'a raw disk with an MBR',
    'gpt-disk': 'a raw disk with a GPT',
    ext: 'an ext2/3/4 filesystem',
    ntfs: 'an NTFS filesystem',
    unknown: 'raw data',
  }[d.content];
}

/**
 * Size in bytes of the filesystem whose first 4 KiB are `head` (ext or NTFS), from its
 * superblock; undefined when it has none, or one beyond 2^53 bytes (not a whole number).
 */
export function filesystemSize(head: Uint8Array, content: 'ext' | 'ntfs'): number | undefined {
  const size = superblockSize(head, content);
  return size !== undefined && Number.isSafeInteger(size) ? size : undefined;
}

function superblockSize(head: Uint8Array, content: 'ext' | 'ntfs'): number | undefined {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (content === 'ext') {
    if (head.byteLength < 1024 + 0x160) return undefined;
    const sb = 1024;
    const blocksLo = view.getUint32(sb + 4, true);
    const logBlockSize = view.getUint32(sb + 24, true);
    const incompat = view.getUint32(sb + 0x60, true);
    const blocksHi = incompat & 0x80 ? view.getUint32(sb + 0x150, true) : 0;
    if (logBlockSize > 6) return undefined;
    return (blocksHi * 2 ** 32 + blocksLo) * (1024 << logBlockSize);
  }
  if (head.byteLength < 0x30) return undefined;
  const bytesPerSector = view.getUint16(0x0b, true);
  const totalSectors = Number(view.getBigUint64(0x28, true));
  if (bytesPerSector === 0) return undefined;
  // The backup boot sector sits in the sector after the volume.
  return (totalSectors + 1) * bytesPerSector;
}
