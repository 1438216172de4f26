/**
 * Writes a raw disk image stream onto an instance disk, faster than `dd oflag=direct`:
 *
 *  - O_DIRECT writes from large aligned buffers (the addon's posix_memalign memory), so the
 *    page cache does not grow and no copy into it is made;
 *  - several buffers in flight (fs.write on the libuv threadpool), so reading/decompressing
 *    the input and writing the disk overlap;
 *  - all-zero sub-blocks are not written as data: runs of them are coalesced and zeroed
 *    explicitly (BLKZEROOUT / fallocate, so a dirty disk never keeps a previous tenant's
 *    data), or skipped when the target is known to read as zeroes (a fresh sparse file);
 *  - the disk size is a hard limit checked before anything beyond it is written;
 *  - a final partial logical block goes through a second, buffered descriptor; fdatasync.
 *
 * writeImage checks the options and runs one ImageWriter (the slots being filled and written)
 * with its ZeroRuns (the zero ranges being coalesced and zeroed). Local image files are read
 * for it by image-file-reader.ts.
 */
import { close, closeSync, constants, fdatasync, fstatSync, openSync, statSync, write, type Stats } from 'node:fs';
import Queue from 'yocto-queue';
import { errorCode, UserError } from '../util/errors.ts';
import { directIo, type DirectIo } from './native.ts';

const MiB = 1024 * 1024;
const DEFAULT_BLOCK_SIZE = 2 * MiB;
const DEFAULT_ZERO_BLOCK_SIZE = 64 * 1024;
const DEFAULT_IN_FLIGHT = 3;
const DEFAULT_MIN_ZERO_RUN = 0;
/** Memory alignment of the buffers: a page satisfies every device's DMA alignment. */
export const MEMORY_ALIGNMENT = 4096;
/** A run of zeroes is handed to zeroRange once it reaches this size (overlaps with reading). */
const MAX_ZERO_RUN = 256 * MiB;
/** Errors of zeroRange that mean "not supported here": fall back to writing zeroes. */
const ZERO_UNSUPPORTED = new Set(['EOPNOTSUPP', 'ENOTSUP', 'ENOSYS', 'ENOTTY']);

export interface WriteTarget {
  path: string;
  kind: 'block' | 'file';
  sizeBytes: number;
}

export interface WriteImageOptions {
  /** Image size when known in advance: larger than the disk fails before writing; a different actual size fails. */
  expectedBytes?: number;
  /** The target already reads as zeroes (see isKnownZero): zero runs are skipped, not zeroed. */
  knownZero?: boolean;
  /** Bytes of the image durably handed to the disk so far (in order). */
  onProgress?: (bytesDone: number) => void;
  /** Size of each aligned I/O buffer (default 2 MiB); a multiple of zeroBlockSize. */
  blockSize?: number;
  /** Granularity of zero detection (default 64 KiB); a multiple of 4096. */
  zeroBlockSize?: number;
  /** Buffers being written while the next one is filled (default 3). */
  inFlight?: number;
  /**
   * Zero runs shorter than this that lie between data in one buffer are written as data
   * (unless knownZero): one longer write costs less than a separate zeroing call.
   */
  minZeroRun?: number;
}

export interface WriteImageResult {
  /** Image bytes consumed and placed on the disk. */
  bytes: number;
  /** Bytes written as data. */
  dataBytes: number;
  /** Bytes found to be zero: zeroed with zeroRange, or skipped on a known-zero target. */
  zeroBytes: number;
}

/** Largest chunk zeroChunk() returns. */
export const ZERO_CHUNK_MAX = 8 * MiB;
let sharedZeros: Uint8Array | undefined;

/**
 * `length` (<= ZERO_CHUNK_MAX) zero bytes for an input stream to yield for a hole of its
 * source: writeImage recognizes these chunks and neither scans nor copies them. They are
 * views of one shared buffer: never write into them.
 */
export function zeroChunk(length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > ZERO_CHUNK_MAX) {
    throw new RangeError(`zeroChunk length must be an integer in 0..${ZERO_CHUNK_MAX} (got ${length})`);
  }
  sharedZeros ??= new Uint8Array(ZERO_CHUNK_MAX);
  return sharedZeros.subarray(0, length);
}

interface Slot {
  bytes: Uint8Array;
  /** Per zero-detection sub-block: 1 = holds data, 0 = all zero (its bytes may be stale). */
  flags: Uint8Array;
}

/** A submitted slot: its writes, and the image offset its end is durable at. */
interface InFlight {
  done: Promise<void>;
  end: number;
  slot: Slot;
}

/** An error of the input iterator: passed on as it is (the caller's pipeline owns it). */
class InputFailure {
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}

async function* guarded(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* input;
  } catch (error) {
    throw new InputFailure(error);
  }
}

/**
 * True when `path` is a regular file that is known to read as zeroes: no allocated blocks
 * (st_blocks == 0) and no data extent (SEEK_DATA), e.g. a freshly created sparse file disk.
 * Block devices are never assumed zero (a new LV may hold a previous tenant's data).
 */
export function isKnownZero(path: string): boolean {
  let st: Stats;
  try {
    st = statSync(path);
  } catch {
    return false;
  }
  if (!st.isFile() || st.blocks !== 0) return false;
  const fd = openSync(path, constants.O_RDONLY);
  try {
    return directIo().seekData(fd, 0) === -1;
  } finally {
    closeSync(fd);
  }
}

function writeAt(fd: number, data: Uint8Array, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    write(fd, data, 0, data.length, position, (error, written) => (error ? reject(error) : resolve(written)));
  });
}

async function writeFully(fd: number, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const written = await writeAt(fd, done === 0 ? data : data.subarray(done), position + done);
    if (written <= 0) throw new Error(`write returned ${written} at offset ${position + done}`);
    done += written;
  }
}

function syncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => close(fd, () => resolve()));
}

function isAllZero(piece: Uint8Array, zeros: Uint8Array): boolean {
  // Buffer.compare is a memcmp: far faster than a JS loop.
  return Buffer.compare(piece, piece.length === zeros.length ? zeros : zeros.subarray(0, piece.length)) === 0;
}

function checkOptions(blockSize: number, zeroBlock: number, inFlight: number): void {
  if (!Number.isInteger(zeroBlock) || zeroBlock < 4096 || zeroBlock % 4096 !== 0) {
    throw new RangeError(`zeroBlockSize must be a positive multiple of 4096 (got ${zeroBlock})`);
  }
  if (!Number.isInteger(blockSize) || blockSize < zeroBlock || blockSize % zeroBlock !== 0) {
    throw new RangeError(`blockSize must be a positive multiple of zeroBlockSize ${zeroBlock} (got ${blockSize})`);
  }
  if (!Number.isInteger(inFlight) || inFlight < 1 || inFlight > 64) {
    throw new RangeError(`inFlight must be an integer in 1..64 (got ${inFlight})`);
  }
}

/** Opens the target without O_TRUNC; O_DIRECT unless the file system refuses it (EINVAL). */
function openTarget(target: WriteTarget): { fd: number; direct: boolean } {
  const open = (flags: number) => openSync(target.path, constants.O_WRONLY | flags);
  try {
    return { fd: open(constants.O_DIRECT), direct: true };
  } catch (error) {
    if (errorCode(error) === 'EINVAL') {
      try {
        return { fd: open(0), direct: false };
      } catch (again) {
        throw new UserError(`${target.path}: cannot open for writing (${errorCode(again) ?? String(again)})`, {
          cause: again,
        });
      }
    }
    throw new UserError(`${target.path}: cannot open for writing (${errorCode(error) ?? String(error)})`, {
      cause: error,
    });
  }
}

function checkTarget(io: DirectIo, fd: number, target: WriteTarget): void {
  const st = fstatSync(fd);
  if (target.kind === 'block') {
    if (!st.isBlockDevice()) throw new UserError(`${target.path}: is not a block device`);
    const size = io.blockDeviceSize(fd);
    if (size < target.sizeBytes) {
      throw new UserError(`${target.path}: the device has ${size} bytes, fewer than the expected ${target.sizeBytes}`);
    }
  } else if (!st.isFile()) {
    throw new UserError(`${target.path}: is not a regular file`);
  }
}

/** The first error of the writer's asynchronous operations (which themselves never reject). */
class FirstFailure {
  #first: { error: unknown } | undefined;

  readonly record = (error: unknown): void => {
    this.#first ??= { error };
  };

  get happened(): boolean {
    return this.#first !== undefined;
  }

  throwIfAny(): void {
    if (this.#first !== undefined) throw this.#first.error;
  }
}

/**
 * Runs of zero bytes of the image: adjacent ranges are coalesced and each run is made to
 * read as zeroes on the disk (zeroRange, else written zeroes where the disk does not support
 * it), or skipped when the target is known to read as zeroes. Up to a depth of runs are
 * zeroed while the writer goes on.
 */
class ZeroRuns {
  readonly #io: DirectIo;
  readonly #fd: number;
  readonly #isBlock: boolean;
  readonly #skip: boolean;
  readonly #bufferSize: number;
  readonly #failure: FirstFailure;
  readonly #zeroing = new Set<Promise<void>>();
  /** The run [start, end) of the image not yet handed to the disk. */
  #run: { start: number; end: number } | undefined;
  #mode: 'native' | 'write' = 'native';
  #writeBuffer: Uint8Array | undefined;

  constructor(io: DirectIo, fd: number, isBlock: boolean, skip: boolean, bufferSize: number, failure: FirstFailure) {
    this.#io = io;
    this.#fd = fd;
    this.#isBlock = isBlock;
    this.#skip = skip;
    this.#bufferSize = bufferSize;
    this.#failure = failure;
  }

  /** Image bytes [start, end) are zero. */
  add(start: number, end: number): void {
    if (this.#run !== undefined && this.#run.end === start) {
      this.#run.end = end;
    } else {
      this.flush();
      this.#run = { start, end };
    }
    if (this.#run.end - this.#run.start >= MAX_ZERO_RUN) this.flush();
  }

  /** Hands the pending run to the disk (data follows it, or the image ends). */
  flush(): void {
    const run = this.#run;
    if (run === undefined) return;
    this.#run = undefined;
    if (this.#skip) return;
    const op: Promise<void> = this.#zeroOut(run.start, run.end - run.start).then(
      () => {
        this.#zeroing.delete(op);
      },
      (error: unknown) => {
        this.#zeroing.delete(op);
        this.#failure.record(error);
      },
    );
    this.#zeroing.add(op);
  }

  /** Waits until fewer than `depth` runs are being zeroed. */
  async below(depth: number): Promise<void> {
    while (this.#zeroing.size >= depth) await Promise.race(this.#zeroing);
  }

  async drain(): Promise<void> {
    await this.below(1);
  }

  async #zeroOut(start: number, length: number): Promise<void> {
    if (this.#mode === 'native') {
      try {
        await this.#io.zeroRange(this.#fd, start, length, this.#isBlock);
        return;
      } catch (error) {
        if (!ZERO_UNSUPPORTED.has(errorCode(error) ?? '')) throw error;
        this.#mode = 'write';
      }
    }
    if (this.#writeBuffer === undefined) {
      this.#writeBuffer = new Uint8Array(this.#io.allocAligned(this.#bufferSize, MEMORY_ALIGNMENT));
      this.#writeBuffer.fill(0);
    }
    for (let done = 0; done < length; ) {
      const n = Math.min(length - done, this.#writeBuffer.length);
      await writeFully(this.#fd, this.#writeBuffer.subarray(0, n), start + done);
      done += n;
    }
  }
}

/**
 * Short zero runs between data in one buffer become data (real zeroes written): one longer
 * write costs less than a separate zeroing call.
 */
function absorbShortZeroRuns(slot: Slot, count: number, grain: number, minZeroRun: number): void {
  const { bytes, flags } = slot;
  for (let k = 0; k < count; ) {
    if (flags[k] === 1) {
      k++;
      continue;
    }
    let j = k + 1;
    while (j < count && flags[j] !== 1) j++;
    if (k > 0 && j < count && (j - k) * grain < minZeroRun) {
      bytes.fill(0, k * grain, j * grain);
      flags.fill(1, k, j);
    }
    k = j;
  }
}

interface WriterSettings {
  blockSize: number;
  /** Zero-detection sub-block size. */
  grain: number;
  depth: number;
  minZeroRun: number;
  knownZero: boolean;
  expected: number | undefined;
  onProgress: ((bytesDone: number) => void) | undefined;
}

/**
 * One image write onto one open target. The image is cut into slots (aligned buffers of
 * blockSize), each slot into sub-blocks of `grain` bytes flagged data or zero; a full slot's
 * data ranges are written while the next slot fills, its zero ranges go to ZeroRuns.
 */
class ImageWriter {
  readonly #io = directIo();
  readonly #target: WriteTarget;
  readonly #settings: WriterSettings;
  readonly #fd: number;
  readonly #direct: boolean;
  /** A second, buffered descriptor for the final partial logical block, once needed. */
  #bufferedFd: number | undefined;
  /** One sub-block of zeroes to compare input with. */
  readonly #zeros: Uint8Array;
  readonly #failure = new FirstFailure();
  readonly #zeroRuns: ZeroRuns;
  /** Slots being written, oldest first. */
  readonly #inflight = new Queue<InFlight>();
  /** Slots written and free for reuse. */
  readonly #free: Slot[] = [];
  /** Set once the write is over (failed or not): no more progress reports. */
  #closing = false;

  /** The slot being filled: its image offset, bytes filled, and the sub-block being filled. */
  #slot: Slot;
  #slotPos = 0;
  #fill = 0;
  #subStart = 0;
  /** The sub-block being filled is all zero so far (its bytes were not copied). */
  #subZero = true;

  #received = 0;
  #dataBytes = 0;
  #zeroBytes = 0;

  constructor(target: WriteTarget, settings: WriterSettings) {
    this.#target = target;
    this.#settings = settings;
    ({ fd: this.#fd, direct: this.#direct } = openTarget(target));
    this.#zeros = new Uint8Array(settings.grain);
    this.#zeroRuns = new ZeroRuns(
      this.#io,
      this.#fd,
      target.kind === 'block',
      settings.knownZero,
      Math.min(settings.blockSize, 1 * MiB),
      this.#failure,
    );
    this.#slot = this.#takeSlot();
  }

  async write(input: AsyncIterable<Uint8Array>): Promise<WriteImageResult> {
    const { grain, expected } = this.#settings;
    checkTarget(this.#io, this.#fd, this.#target);
    const lbs = this.#direct ? this.#io.logicalBlockSize(this.#fd) : 1;
    if (this.#target.kind === 'block' && grain % lbs !== 0)
      throw new RangeError(`zeroBlockSize ${grain} is not a multiple of the logical block size ${lbs}`);

    for await (const chunk of guarded(input)) {
      this.#failure.throwIfAny();
      this.#admit(chunk.length);
      await this.#take(chunk);
    }
    this.#failure.throwIfAny();
    if (expected !== undefined && this.#received !== expected) {
      throw new UserError(
        `${this.#target.path}: the image ended after ${this.#received} bytes, ${expected} were announced`,
      );
    }
    await this.#finish(lbs);
    return { bytes: this.#slotPos, dataBytes: this.#dataBytes, zeroBytes: this.#zeroBytes };
  }

  /** Waits for every operation, then closes the descriptors (nothing may use them, or the buffers, after). */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#drain();
    await closeFd(this.#fd);
    if (this.#bufferedFd !== undefined) await closeFd(this.#bufferedFd);
  }

  /** The disk size and the announced size are hard limits, checked before the bytes are taken. */
  #admit(length: number): void {
    const label = this.#target.path;
    const limit = this.#target.sizeBytes;
    const expected = this.#settings.expected;
    if (this.#received + length > limit) {
      throw new UserError(
        `${label}: the image is larger than the disk (${limit} bytes); nothing beyond the disk end was written`,
      );
    }
    if (expected !== undefined && this.#received + length > expected) {
      throw new UserError(`${label}: the image is larger than its announced size (${expected} bytes)`);
    }
    this.#received += length;
  }

  /** Copies the data sub-blocks of `chunk` into slots (zero ones are only flagged), submitting full slots. */
  async #take(chunk: Uint8Array): Promise<void> {
    const { grain, blockSize } = this.#settings;
    const knownZeroChunk = chunk.buffer === sharedZeros?.buffer;
    for (let i = 0; i < chunk.length; ) {
      const subEnd = this.#subStart + grain;
      const n = Math.min(chunk.length - i, subEnd - this.#fill);
      if (!this.#subZero || !(knownZeroChunk || isAllZero(chunk.subarray(i, i + n), this.#zeros))) {
        if (this.#subZero) {
          // First data in this sub-block: its skipped zero prefix must be real zeroes now.
          if (this.#fill > this.#subStart) this.#slot.bytes.fill(0, this.#subStart, this.#fill);
          this.#subZero = false;
        }
        this.#slot.bytes.set(chunk.subarray(i, i + n), this.#fill);
      }
      this.#fill += n;
      i += n;
      if (this.#fill === subEnd) {
        this.#flagSubBlock();
        this.#subStart = this.#fill;
        this.#subZero = true;
        if (this.#fill === blockSize) await this.#submit(blockSize);
      }
    }
  }

  #flagSubBlock(): void {
    this.#slot.flags[this.#subStart / this.#settings.grain] = this.#subZero ? 0 : 1;
  }

  #takeSlot(): Slot {
    const { blockSize, grain } = this.#settings;
    return (
      this.#free.pop() ?? {
        bytes: new Uint8Array(this.#io.allocAligned(blockSize, MEMORY_ALIGNMENT)),
        flags: new Uint8Array(blockSize / grain),
      }
    );
  }

  /** Hands slot bytes [0, length) to the disk at slotPos and starts a new slot. */
  async #submit(length: number): Promise<void> {
    const { grain, depth, minZeroRun, knownZero } = this.#settings;
    while (this.#inflight.size >= depth) await this.#retireOldest();
    await this.#zeroRuns.below(depth);
    this.#failure.throwIfAny();
    const pos = this.#slotPos;
    const slot = this.#slot;
    const count = Math.ceil(length / grain);
    if (minZeroRun > grain && !knownZero) absorbShortZeroRuns(slot, count, grain, minZeroRun);
    const writes: Promise<void>[] = [];
    for (let k = 0; k < count; ) {
      const data = slot.flags[k] === 1;
      let j = k + 1;
      while (j < count && (slot.flags[j] === 1) === data) j++;
      const a = k * grain;
      const b = Math.min(j * grain, length);
      if (data) {
        this.#zeroRuns.flush();
        writes.push(writeFully(this.#fd, slot.bytes.subarray(a, b), pos + a));
        this.#dataBytes += b - a;
      } else {
        this.#zeroBytes += b - a;
        this.#zeroRuns.add(pos + a, pos + b);
      }
      k = j;
    }
    const done = Promise.all(writes).then(() => undefined, this.#failure.record);
    this.#inflight.enqueue({ done, end: pos + length, slot });
    this.#slotPos += length;
    this.#slot = this.#takeSlot();
    this.#fill = 0;
    this.#subStart = 0;
    this.#subZero = true;
  }

  async #retireOldest(): Promise<void> {
    const item = this.#inflight.dequeue();
    if (item === undefined) return;
    await item.done;
    this.#free.push(item.slot);
    if (!this.#failure.happened && !this.#closing) this.#settings.onProgress?.(item.end);
  }

  async #drain(): Promise<void> {
    while (this.#inflight.size > 0) await this.#retireOldest();
    await this.#zeroRuns.drain();
  }

  /** The last, partial slot: whole logical blocks go direct, the remainder buffered; then fdatasync. */
  async #finish(lbs: number): Promise<void> {
    const { grain, knownZero } = this.#settings;
    if (this.#fill > this.#subStart) this.#flagSubBlock();
    const fill = this.#fill;
    const directLength = fill - (fill % lbs);
    const tailLength = fill - directLength;
    let tail: { data: Uint8Array; zero: boolean } | undefined;
    if (tailLength > 0) {
      const zero = this.#slot.flags[Math.floor(directLength / grain)] !== 1;
      tail = { data: zero ? new Uint8Array(tailLength) : this.#slot.bytes.slice(directLength, fill), zero };
    }
    if (directLength > 0) await this.#submit(directLength);
    this.#zeroRuns.flush();
    await this.#drain();
    this.#failure.throwIfAny();

    if (tail !== undefined) {
      // After every direct write and zeroing has completed: the kernel's read-modify-write
      // of this last block then sees the new data around it.
      const position = this.#slotPos;
      if (tail.zero) this.#zeroBytes += tail.data.length;
      else this.#dataBytes += tail.data.length;
      if (!(tail.zero && knownZero)) {
        this.#bufferedFd = openSync(this.#target.path, constants.O_WRONLY);
        await writeFully(this.#bufferedFd, tail.data, position);
        await syncFd(this.#bufferedFd);
        const pageStart = position - (position % 4096);
        this.#io.dropCache(this.#bufferedFd, pageStart, position + tail.data.length - pageStart + 4096);
      }
      this.#slotPos += tail.data.length;
    }
    await syncFd(this.#fd);
    if (!this.#direct && this.#slotPos > 0) this.#io.dropCache(this.#fd, 0, this.#slotPos);
    this.#settings.onProgress?.(this.#slotPos);
  }
}

/**
 * Writes the image `input` yields onto `target` from offset 0 and returns what it did.
 * Bytes of the disk beyond the image are not touched. Throws a UserError when the image is
 * larger than `target.sizeBytes` (before writing anything beyond it) or when it does not
 * match `options.expectedBytes`.
 */
export async function writeImage(
  input: AsyncIterable<Uint8Array>,
  target: WriteTarget,
  options: WriteImageOptions = {},
): Promise<WriteImageResult> {
  const settings: WriterSettings = {
    blockSize: options.blockSize ?? DEFAULT_BLOCK_SIZE,
    grain: options.zeroBlockSize ?? DEFAULT_ZERO_BLOCK_SIZE,
    depth: options.inFlight ?? DEFAULT_IN_FLIGHT,
    minZeroRun: options.minZeroRun ?? DEFAULT_MIN_ZERO_RUN,
    knownZero: options.knownZero === true,
    expected: options.expectedBytes,
    onProgress: options.onProgress,
  };
  checkOptions(settings.blockSize, settings.grain, settings.depth);
  const label = target.path;
  if (settings.expected !== undefined && settings.expected > target.sizeBytes) {
    throw new UserError(
      `${label}: the image (${settings.expected} bytes) is larger than the disk (${target.sizeBytes} bytes)`,
    );
  }
  const writer = new ImageWriter(target, settings);
  try {
    return await writer.write(input);
  } catch (error) {
    if (error instanceof InputFailure) throw error.error;
    if (error instanceof UserError || error instanceof RangeError) throw error;
    throw new UserError(
      `${label}: writing the image failed: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  } finally {
    await writer.close();
  }
}
