/**
 * The first half of create: get the image named by img_id / img_format onto disk 0,
 * exactly, with progress. Streaming formats go through the O_DIRECT image writer;
 * virtual-disk formats through qemu-img after inspection.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { Settings } from '../config/settings.ts';
import type { DiskInfo } from '../disk/disk-target.ts';
import { readImageFile } from '../disk/image-file-reader.ts';
import { isKnownZero, writeImage } from '../disk/image-writer.ts';
import { zeroDiskRange } from '../disk/wipe.ts';
import { log } from '../log/logger.ts';
import * as msg from '../monitor/messages.ts';
import type { MonitorSink } from '../monitor/progress-monitor.ts';
import type { ByteProgressDisplay } from '../monitor/progress-bar.ts';
import { temporaryDirectory, type TemporaryDirectory } from '../util/cleanup.ts';
import { UserError } from '../util/errors.ts';
import { tlsTrust } from '../util/tls-trust.ts';
import { collectingYoungGarbage } from '../util/young-garbage.ts';
import { digestFromProperties, digestFromSidecar, verified, type ExpectedDigest } from './checksum.ts';
import { decompress, decompressFile, readsFileItself } from './decompress.ts';
import { downloadByteLimit } from './download-limits.ts';
import { findImageFormat, type ImageFormatSpec } from './formats.ts';
import { describeDetected, detect, filesystemSize, MAGIC_BYTES, readFileHead, type Detected } from './magic.ts';
import { bootCode, PREFIX_BYTES, synthesizePrefix } from './mbr.ts';
import { inspectQemuImage, prepareConversion, type QemuFormat } from './qemu-img.ts';
import { selectSource } from './sources/registry.ts';
import type { OpenedImage, SourceSettings } from './sources/source.ts';
import { counted, peek, prefixed, type ByteStream } from './stream-util.ts';

export interface DeployRequest {
  imgId: string;
  imgFormat: string;
  properties: Readonly<Record<string, string>>;
  disk: DiskInfo;
  settings: Settings;
  monitor: MonitorSink;
  terminal?: ByteProgressDisplay | undefined;
}

export interface DeployResult {
  method: 'none' | 'stream' | 'qemu-img';
  /** Bytes of the image as stored (compressed size for compressed images). */
  imageBytes: number;
  /** Bytes that landed on the disk (raw size). */
  diskBytes: number;
  seconds: number;
  /** Set for extdump/ntfsdump: the synthesized partition table holds the root on partition 1. */
  synthesizedPartition?: { osFamily: 'linux' | 'windows'; rootPartition: 1 };
}

const PROGRESS_INTERVAL_MS = 3000;
const COMPRESSED_READ_CHUNK = 1024 * 1024;

/** Every remote download of a deployment is bounded by what its disk can take. */
function sourceSettings(settings: Settings, disk: DiskInfo): SourceSettings {
  return {
    imageDir: settings.IMAGE_DIR,
    httpTimeoutSeconds: settings.HTTP_TIMEOUT,
    httpRetries: settings.HTTP_RETRIES,
    downloadTimeoutSeconds: settings.DOWNLOAD_TIMEOUT,
    downloadMinSpeed: settings.DOWNLOAD_MIN_SPEED,
    downloadMaxBytes: downloadByteLimit(disk.sizeBytes),
    tls: tlsTrust(settings),
  };
}

class ProgressReporter {
  position = 0;
  readonly total: number;
  readonly #sink: MonitorSink;
  readonly #terminal: ByteProgressDisplay | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(total: number, sink: MonitorSink, terminal: ByteProgressDisplay | undefined) {
    this.total = total;
    this.#sink = sink;
    this.#terminal = terminal;
    this.#timer = setInterval(() => this.#sink.send(msg.copyProgress(this.position, this.total)), PROGRESS_INTERVAL_MS);
    this.#timer.unref();
  }

  update(position: number): void {
    this.position = position;
    this.#terminal?.update(position, this.total || undefined);
  }

  finish(): void {
    clearInterval(this.#timer);
    const end = this.total || this.position;
    this.#sink.send(msg.copyProgress(end, end));
    this.#terminal?.update(end, end || undefined, true);
    this.#terminal?.done();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#terminal?.done();
  }
}

async function expectedDigest(req: DeployRequest): Promise<ExpectedDigest | undefined> {
  const fromProperties = digestFromProperties(req.properties);
  if (fromProperties) return fromProperties;
  if (/^https?:\/\//i.test(req.imgId))
    return digestFromSidecar(new URL(req.imgId), req.settings.HTTP_TIMEOUT * 1000, tlsTrust(req.settings));
  return undefined;
}

/**
 * A local image is read with O_DIRECT, skipping its holes (readImageFile): no page cache,
 * and zero ranges never read. Compressed images are read in smaller chunks: they are
 * consumed ten times slower than raw ones, and large buffers would only add memory.
 * Anything else streams as the source gives it.
 */
async function fastestStream(opened: OpenedImage): Promise<ByteStream> {
  if (opened.localPath === undefined) return opened.stream();
  const compressed = detect(await readFileHead(opened.localPath)).kind === 'compressed';
  return readImageFile(opened.localPath, compressed ? { chunkSize: COMPRESSED_READ_CHUNK } : {});
}

/** Streams raw (possibly compressed) disk images and filesystem dumps through the writer. */
async function deployStream(
  req: DeployRequest,
  format: ImageFormatSpec,
  opened: OpenedImage,
  digest: ExpectedDigest | undefined,
): Promise<DeployResult> {
  const started = Date.now();
  const progress = new ProgressReporter(opened.size ?? 0, req.monitor, req.terminal);
  // A local file compressed with zstd, xz or bzip2 is read by the decompressor itself; its
  // checksum, if one is expected, is computed alongside and checked after the write.
  const local = opened.localPath;
  const localHead = local !== undefined ? detect(await readFileHead(local)) : undefined;
  const fileFed =
    local !== undefined && localHead?.kind === 'compressed' && readsFileItself(localHead.compression)
      ? { path: local, compression: localHead.compression }
      : undefined;
  let checked: Promise<void> | undefined;
  let head: Buffer;
  let stream: ByteStream;
  let found: Detected;
  if (fileFed !== undefined) {
    if (digest) {
      checked = drain(verified(readImageFile(fileFed.path, { chunkSize: COMPRESSED_READ_CHUNK }), digest));
      checked.catch(() => undefined); // awaited after the write
    }
    head = Buffer.alloc(0);
    stream = decompressFile(fileFed.path, fileFed.compression, (n) => progress.update(n));
    found = { kind: 'compressed', compression: fileFed.compression };
  } else {
    let input: ByteStream = counted(await fastestStream(opened), (n) => progress.update(n));
    if (digest) input = verified(input, digest);
    ({ head, stream } = await peek(input, MAGIC_BYTES));
    found = detect(head);
  }
  let rawSizeKnown = opened.size;
  const compression = found.kind === 'compressed' ? found.compression : undefined;
  if (found.kind === 'compressed') {
    log().info({ compression: found.compression }, 'image is compressed; decompressing while writing');
    ({ head, stream } = await peek(
      fileFed !== undefined ? stream : decompress(stream, found.compression),
      MAGIC_BYTES,
    ));
    found = detect(head);
    rawSizeKnown = undefined;
    if (found.kind !== 'raw')
      throw new UserError(
        `img_format: declared ${format.name} but the compressed image holds ${describeDetected(found)}`,
      );
  }
  if (found.kind === 'container') {
    const hint =
      found.container === 'vmdk-descriptor' || found.container === 'qcow' || found.container === 'vhd'
        ? ''
        : ` (use img_format=${found.container})`;
    throw new UserError(`img_format: declared ${format.name} but the image is ${describeDetected(found)}${hint}`);
  }
  let synthesized: DeployResult['synthesizedPartition'];
  let expectedDiskBytes = rawSizeKnown;
  if (format.filesystemDump) {
    if (found.kind !== 'raw' || found.content !== format.filesystemDump)
      throw new UserError(`img_format: declared ${format.name} but the image is ${describeDetected(found)}`);
    const fsBytes = filesystemSize(head, format.filesystemDump);
    if (fsBytes === undefined)
      throw new UserError(`img_id: cannot read the ${format.filesystemDump} filesystem size from its superblock`);
    const code = bootCode();
    if (!code)
      log().warn('no syslinux MBR boot code installed (package syslinux-common): the synthesized MBR has no boot code');
    stream = prefixed(synthesizePrefix(fsBytes, format.filesystemDump, code), stream);
    expectedDiskBytes = PREFIX_BYTES + fsBytes;
    synthesized = { osFamily: format.filesystemDump === 'ext' ? 'linux' : 'windows', rootPartition: 1 };
  } else if (found.kind === 'raw' && (found.content === 'ext' || found.content === 'ntfs')) {
    throw new UserError(
      `img_format: declared diskdump but the image is ${describeDetected(found)} (use img_format=${found.content}dump)`,
    );
  }
  if (expectedDiskBytes !== undefined && expectedDiskBytes > req.disk.sizeBytes) {
    throw new UserError(
      `img_id: the image (${expectedDiskBytes} bytes) is larger than the disk (${req.disk.sizeBytes} bytes)`,
    );
  }
  const knownZero = req.disk.kind === 'file' && (await isKnownZero(req.disk.path));
  let written: Awaited<ReturnType<typeof writeImage>>;
  try {
    // Local files and decompressor pipes reuse their buffers; zlib and HTTP allocate per chunk.
    const producesGarbage = opened.localPath === undefined || compression === 'gzip';
    written = await writeImage(producesGarbage ? collectingYoungGarbage(stream) : stream, req.disk, {
      ...(expectedDiskBytes !== undefined ? { expectedBytes: expectedDiskBytes } : {}),
      knownZero,
    });
    await checked;
  } catch (error) {
    progress.stop();
    // A corrupt stream with a checksum expected: the mismatch says more than the decompressor.
    throw (
      (await checked?.then(
        () => undefined,
        (mismatch: unknown) => mismatch,
      )) ?? error
    );
  }
  progress.finish();
  if (req.settings.WIPE_DISK_TAIL && !knownZero && written.bytes < req.disk.sizeBytes) {
    await zeroDiskRange(req.disk, written.bytes, req.disk.sizeBytes - written.bytes);
  }
  log().info(
    { diskBytes: written.bytes, dataBytes: written.dataBytes, zeroBytes: written.zeroBytes, knownZero },
    'image written',
  );
  return {
    method: 'stream',
    imageBytes: progress.position,
    diskBytes: written.bytes,
    seconds: (Date.now() - started) / 1000,
    ...(synthesized ? { synthesizedPartition: synthesized } : {}),
  };
}

/** Downloads a remote virtual-disk image into a private temporary directory. */
async function downloadToTemp(opened: OpenedImage, dir: string, digest: ExpectedDigest | undefined): Promise<string> {
  const file = join(dir, 'image');
  let input: ByteStream = opened.stream();
  if (digest) input = verified(input, digest);
  await pipeline(Readable.from(input), createWriteStream(file, { mode: 0o600 }));
  return file;
}

async function drain(input: ByteStream): Promise<void> {
  for await (const _chunk of input) {
    // hashing only
  }
}

async function deployQemu(
  req: DeployRequest,
  format: QemuFormat,
  opened: OpenedImage,
  digest: ExpectedDigest | undefined,
): Promise<DeployResult> {
  const started = Date.now();
  let tempDir: TemporaryDirectory | undefined;
  let virtualSize = 0;
  try {
    let path = opened.localPath;
    if (path === undefined) {
      tempDir = await temporaryDirectory(join(req.settings.IMAGE_TMP_DIR, 'snf-image-'), 'downloaded image');
      log().info({ dir: tempDir.path }, `${format} images need random access: downloading first`);
      path = await downloadToTemp(opened, tempDir.path, digest);
    } else if (digest) {
      await drain(verified(createReadStream(path, { highWaterMark: 4 * 1024 * 1024 }), digest));
    }
    // The converter's NBD daemon starts while the image is inspected (it writes nothing).
    const conversion = prepareConversion(path, req.disk.path, {
      uids: req.settings.HELPER_UIDS,
      user: req.settings.HELPER_USER,
      timeoutSeconds: req.settings.CONVERT_TIMEOUT,
    });
    conversion.catch(() => undefined); // awaited below, or closed in finally
    try {
      const info = await inspectQemuImage(path, format);
      if (info.virtualSize > req.disk.sizeBytes)
        throw new UserError(
          `img_id: the image (virtual size ${info.virtualSize} bytes) is larger than the disk (${req.disk.sizeBytes} bytes)`,
        );
      const prepared = await conversion;
      const progress = new ProgressReporter(info.virtualSize, req.monitor, req.terminal);
      try {
        await prepared.run(format, (fraction) => progress.update(Math.round(fraction * info.virtualSize)));
      } catch (error) {
        progress.stop();
        throw error;
      }
      progress.finish();
      virtualSize = info.virtualSize;
    } finally {
      await conversion.then(
        (prepared) => prepared.close(),
        () => undefined,
      );
    }
    if (req.settings.WIPE_DISK_TAIL && virtualSize < req.disk.sizeBytes)
      await zeroDiskRange(req.disk, virtualSize, req.disk.sizeBytes - virtualSize);
    return {
      method: 'qemu-img',
      imageBytes: opened.size ?? 0,
      diskBytes: virtualSize,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await tempDir?.remove();
  }
}

export async function deployImage(req: DeployRequest): Promise<DeployResult> {
  const format = findImageFormat(req.imgFormat);
  if (!format) throw new UserError(`img_format: '${req.imgFormat}' is not a supported format`);
  const cache = req.settings.IMAGE_CACHE
    ? {
        dir: req.settings.IMAGE_CACHE_DIR,
        maxBytes: req.settings.IMAGE_CACHE_MAX_SIZE,
        verify: req.settings.IMAGE_CACHE_VERIFY,
      }
    : undefined;
  const source = selectSource(req.imgId, req.settings.SOURCE_PRIORITIES, req.settings.SOURCES_DISABLED, cache);
  // A source that verifies the checksum itself (the cache) is given it before it opens.
  const early = source.verifiesDigest === true ? await expectedDigest(req) : undefined;
  const opened = await source.open(req.imgId, sourceSettings(req.settings, req.disk), {
    digest: early,
    needFile: format.qemuFormat !== undefined,
  });
  try {
    log().info(
      { source: source.name, image: opened.description, bytes: opened.size, format: format.name },
      'image source opened',
    );
    if (opened.nothingToCopy === true) {
      req.monitor.send(msg.info('No image to copy (img_id=null): customizing the disk as it is.'));
      return { method: 'none', imageBytes: 0, diskBytes: 0, seconds: 0 };
    }
    const digest = source.verifiesDigest === true ? early : await expectedDigest(req);
    if (digest) log().info({ algorithm: digest.algorithm, from: digest.from }, 'image checksum will be verified');
    const toVerify = source.verifiesDigest === true ? opened.pendingDigest : digest;
    req.monitor.send(msg.info('Starting image copy...'));
    const result = format.qemuFormat
      ? await deployQemu(req, format.qemuFormat as QemuFormat, opened, toVerify)
      : await deployStream(req, format, opened, toVerify);
    req.monitor.send(msg.info('Image copy finished.'));
    return result;
  } finally {
    await opened.close();
  }
}
