import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findInSums } from '../../src/image/checksum.ts';
import { describeDetected, detect, filesystemSize } from '../../src/image/magic.ts';
import { PREFIX_BYTES, synthesizePrefix } from '../../src/image/mbr.ts';
import { checkHeader } from '../../src/image/qemu-img.ts';
import { orderedSources, selectSource } from '../../src/image/sources/registry.ts';
import { renderBar } from '../../src/monitor/progress-bar.ts';

function buf(size: number, writes: Array<[number, number[] | string]>): Buffer {
  const b = Buffer.alloc(size);
  for (const [offset, data] of writes)
    (typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data)).copy(b, offset);
  return b;
}

describe('image content detection', () => {
  it('recognises compression, containers and raw content by magic bytes', () => {
    const cases: Array<[Buffer, string]> = [
      [buf(4096, [[0, [0x1f, 0x8b, 0x08]]]), 'gzip-compressed data'],
      [buf(4096, [[0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]]]), 'xz-compressed data'],
      [buf(4096, [[0, [0x28, 0xb5, 0x2f, 0xfd]]]), 'zstd-compressed data'],
      [buf(4096, [[0, 'BZh9']]), 'bzip2-compressed data'],
      [buf(4096, [[0, [0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]]]), 'a qcow2 image'],
      [buf(4096, [[0, 'KDMV']]), 'a vmdk image'],
      [buf(4096, [[0, '# Disk DescriptorFile']]), 'a VMDK descriptor (text) file'],
      [buf(4096, [[0x40, [0x7f, 0x10, 0xda, 0xbe]]]), 'a vdi image'],
      [buf(4096, [[0, 'vhdxfile']]), 'a vhdx image'],
      [
        buf(4096, [
          [510, [0x55, 0xaa]],
          [512, 'EFI PART'],
        ]),
        'a raw disk with a GPT',
      ],
      [buf(4096, [[510, [0x55, 0xaa]]]), 'a raw disk with an MBR'],
      [buf(4096, [[1080, [0x53, 0xef]]]), 'an ext2/3/4 filesystem'],
      [buf(4096, [[3, 'NTFS    ']]), 'an NTFS filesystem'],
      [buf(4096, []), 'raw data'],
    ];
    for (const [head, expected] of cases) assert.equal(describeDetected(detect(head)), expected);
  });

  it('reads filesystem sizes from superblocks', () => {
    const ext = Buffer.alloc(4096);
    ext.writeUInt32LE(262144, 1024 + 4); // blocks
    ext.writeUInt32LE(2, 1024 + 24); // 4 KiB blocks
    assert.equal(filesystemSize(ext, 'ext'), 262144 * 4096);
    const ntfs = Buffer.alloc(4096);
    ntfs.writeUInt16LE(512, 0x0b);
    ntfs.writeBigUInt64LE(2097151n, 0x28);
    assert.equal(filesystemSize(ntfs, 'ntfs'), 2097152 * 512);
  });

  it('synthesizes an MBR with one bootable partition at sector 2048', () => {
    const prefix = synthesizePrefix(1024 * 1024 * 1024 + 1, 'ext', Buffer.alloc(440, 0xcc));
    assert.equal(prefix.byteLength, PREFIX_BYTES);
    assert.equal(prefix[0], 0xcc);
    assert.equal(prefix[446], 0x80);
    assert.equal(prefix[450], 0x83);
    assert.equal(prefix.readUInt32LE(454), 2048);
    assert.equal(prefix.readUInt32LE(458), 2097153);
    assert.deepEqual([prefix[510], prefix[511]], [0x55, 0xaa]);
    assert.equal(synthesizePrefix(512, 'ntfs', undefined)[450], 0x07);
  });

  it('refuses qcow2 headers with a backing file or an external data file, and mismatched formats', () => {
    const qcow = buf(4096, [[0, [0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]]]);
    assert.doesNotThrow(() => checkHeader(qcow, 'qcow2'));
    const backed = Buffer.from(qcow);
    backed.writeBigUInt64BE(512n, 8);
    assert.throws(() => checkHeader(backed, 'qcow2'), /has a backing file/);
    const external = Buffer.from(qcow);
    external.writeBigUInt64BE(4n, 72);
    assert.throws(() => checkHeader(external, 'qcow2'), /external data file/);
    assert.throws(
      () => checkHeader(buf(4096, [[510, [0x55, 0xaa]]]), 'qcow2'),
      /^UserError: img_format: declared qcow2 but the image is a raw disk with an MBR$/,
    );
    assert.throws(() => checkHeader(qcow, 'vmdk'), /declared vmdk but the image is a qcow2 image/);
  });

  it('finds an image digest in a SHA256SUMS file', () => {
    const hex = 'a'.repeat(64);
    assert.equal(findInSums(`${'b'.repeat(64)}  other.img\n${hex} *debian.img.zst\n`, 'debian.img.zst', 'sha256'), hex);
    assert.equal(findInSums(`${hex}  debian.img\n`, 'missing', 'sha256'), undefined);
    assert.equal(findInSums(`${hex}  debian.img\n`, 'debian.img', 'sha512'), undefined);
  });
});

describe('image sources', () => {
  it('orders back-ends by priority, honouring configuration and disabling', () => {
    assert.deepEqual(
      orderedSources(new Map(), []).map((s) => s.name),
      ['null', 'http', 'ftp', 'local'],
    );
    assert.deepEqual(
      orderedSources(new Map([['local', 99]]), ['ftp']).map((s) => s.name),
      ['local', 'null', 'http'],
    );
  });

  it('selects the back-end for each img_id form', () => {
    const pick = (id: string) => selectSource(id, new Map(), []).name;
    assert.equal(pick('null'), 'null');
    assert.equal(pick('https://h/x.img'), 'http');
    assert.equal(pick('ftp://h/x.img'), 'ftp');
    assert.equal(pick('local://x.img'), 'local');
    assert.equal(pick('file://x.img'), 'local');
    assert.equal(pick('x.img'), 'local');
    assert.throws(
      () => selectSource('http://h/x', new Map(), ['http']),
      /img_id: no enabled image source handles this id \(disabled: http\)/,
    );
  });
});

describe('progress bar', () => {
  it('renders percent, amounts and speed', () => {
    assert.equal(
      renderBar(512 * 1024 * 1024, 1024 * 1024 * 1024, 2, 10),
      '[#####.....]  50.0% 512.0 MiB of 1.00 GiB 256 MiB/s',
    );
    assert.equal(renderBar(1024 * 1024, undefined, 1), 'copied 1.0 MiB 1 MiB/s');
  });
});
