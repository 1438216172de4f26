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
 */
import {
  close,
  closeSync,
  constants,
  fdatasync,
  fstatSync,
  openSync,
  read,
  statSync,
  write,
  type Stats,
} from 'node:fs';
import Queue from 'yocto-queue';
import { UserError } from '../util/errors.ts';
import { directIo, type DirectIo } from './native.ts';

const MiB = 1024 * 1024;
const DEFAULT_BLOCK_SIZE = 2 * MiB;
const DEFAULT_ZERO_BLOCK_SIZE = 64 * 1024;
const DEFAULT_IN_FLIGHT = 3;
const DEFAULT_MIN_ZERO_RUN = 0;
/** Memory alignment of the buffers: a page satisfies every device's DMA alignment. */
const MEMORY_ALIGNMENT = 4096;
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
  /** Size of each aligned I/O buffer (default 4 MiB); a multiple of zeroBlockSize. */
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
const ZERO_CHUNK_MAX = 8 * MiB;
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

interface InFlight {
  done: Promise<void>;
  end: number;
  slot: Slot;
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

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
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
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const grain = options.zeroBlockSize ?? DEFAULT_ZERO_BLOCK_SIZE;
  const depth = options.inFlight ?? DEFAULT_IN_FLIGHT;
  const minZeroRun = options.minZeroRun ?? DEFAULT_MIN_ZERO_RUN;
  checkOptions(blockSize, grain, depth);
  const limit = target.sizeBytes;
  const expected = options.expectedBytes;
  const knownZero = options.knownZero === true;
  const onProgress = options.onProgress;
  const label = target.path;
  if (expected !== undefined && expected > limit) {
    throw new UserError(`${label}: the image (${expected} bytes) is larger than the disk (${limit} bytes)`);
  }

  const io = directIo();
  const { fd, direct } = openTarget(target);
  const isBlock = target.kind === 'block';
  let bufferedFd: number | undefined;

  // Every asynchronous operation resolves (never rejects); the first error is kept here.
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    failure ??= { error };
  };
  const inflight = new Queue<InFlight>();
  const zeroOps = new Set<Promise<void>>();
  const free: Slot[] = [];
  let zeroWriteBuffer: Uint8Array | undefined;
  let zeroMode: 'native' | 'write' = 'native';
  let closing = false;

  const zeros = new Uint8Array(grain);
  const newSlot = (): Slot => ({
    bytes: new Uint8Array(io.allocAligned(blockSize, MEMORY_ALIGNMENT)),
    flags: new Uint8Array(blockSize / grain),
  });
  const takeSlot = (): Slot => free.pop() ?? newSlot();

  let dataBytes = 0;
  let zeroBytes = 0;
  let received = 0;
  let slot = takeSlot();
  let slotPos = 0; // image offset of slot.bytes[0]
  let fill = 0; // bytes of slot filled
  let subStart = 0; // start (in slot) of the sub-block being filled
  let subZero = true; // the sub-block being filled is all zero so far (and not copied)
  let zeroStart = -1; // pending run of zeroes [zeroStart, zeroEnd) of the image
  let zeroEnd = -1;

  const throwIfFailed = (): void => {
    if (failure !== undefined) throw failure.error;
  };

  const zeroOut = async (start: number, length: number): Promise<void> => {
    if (zeroMode === 'native') {
      try {
        await io.zeroRange(fd, start, length, isBlock);
        return;
      } catch (error) {
        if (!ZERO_UNSUPPORTED.has(errorCode(error) ?? '')) throw error;
        zeroMode = 'write';
      }
    }
    if (zeroWriteBuffer === undefined) {
      zeroWriteBuffer = new Uint8Array(io.allocAligned(Math.min(blockSize, 1 * MiB), MEMORY_ALIGNMENT));
      zeroWriteBuffer.fill(0);
    }
    for (let done = 0; done < length; ) {
      const n = Math.min(length - done, zeroWriteBuffer.length);
      await writeFully(fd, zeroWriteBuffer.subarray(0, n), start + done);
      done += n;
    }
  };

  const flushZeroes = (): void => {
    if (zeroStart < 0) return;
    const start = zeroStart;
    const length = zeroEnd - zeroStart;
    zeroStart = zeroEnd = -1;
    if (knownZero) return;
    const op: Promise<void> = zeroOut(start, length).then(
      () => {
        zeroOps.delete(op);
      },
      (error: unknown) => {
        zeroOps.delete(op);
        fail(error);
      },
    );
    zeroOps.add(op);
  };

  const addZeroes = (start: number, end: number): void => {
    zeroBytes += end - start;
    if (zeroStart >= 0 && zeroEnd === start) {
      zeroEnd = end;
    } else {
      flushZeroes();
      zeroStart = start;
      zeroEnd = end;
    }
    if (zeroEnd - zeroStart >= MAX_ZERO_RUN) flushZeroes();
  };

  const retireOldest = async (): Promise<void> => {
    const item = inflight.dequeue();
    if (item === undefined) return;
    await item.done;
    free.push(item.slot);
    if (failure === undefined && !closing) onProgress?.(item.end);
  };

  /** Hands slot bytes [0, length) to the disk at slotPos and starts a new slot. */
  const submit = async (length: number): Promise<void> => {
    while (inflight.size >= depth) await retireOldest();
    while (zeroOps.size >= depth) await Promise.race(zeroOps);
    throwIfFailed();
    const pos = slotPos;
    const { bytes, flags } = slot;
    const ops: Promise<void>[] = [];
    const count = Math.ceil(length / grain);
    if (minZeroRun > grain && !knownZero) {
      // Short zero runs between data in this buffer: one longer write beats a zeroing call.
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
    for (let k = 0; k < count; ) {
      const data = flags[k] === 1;
      let j = k + 1;
      while (j < count && (flags[j] === 1) === data) j++;
      const a = k * grain;
      const b = Math.min(j * grain, length);
      if (data) {
        flushZeroes();
        ops.push(writeFully(fd, bytes.subarray(a, b), pos + a));
        dataBytes += b - a;
      } else {
        addZeroes(pos + a, pos + b);
      }
      k = j;
    }
    const done = Promise.all(ops).then(() => undefined, fail);
    inflight.enqueue({ done, end: pos + length, slot });
    slotPos += length;
    slot = takeSlot();
    fill = 0;
    subStart = 0;
    subZero = true;
  };

  const drain = async (): Promise<void> => {
    while (inflight.size > 0) await retireOldest();
    while (zeroOps.size > 0) await Promise.race(zeroOps);
  };

  try {
    checkTarget(io, fd, target);
    const lbs = direct ? io.logicalBlockSize(fd) : 1;
    if (isBlock && grain % lbs !== 0)
      throw new RangeError(`zeroBlockSize ${grain} is not a multiple of the logical block size ${lbs}`);

    for await (const chunk of guarded(input)) {
      throwIfFailed();
      if (received + chunk.length > limit) {
        throw new UserError(
          `${label}: the image is larger than the disk (${limit} bytes); nothing beyond the disk end was written`,
        );
      }
      if (expected !== undefined && received + chunk.length > expected) {
        throw new UserError(`${label}: the image is larger than its announced size (${expected} bytes)`);
      }
      received += chunk.length;
      const knownZeroChunk = chunk.buffer === sharedZeros?.buffer;
      for (let i = 0; i < chunk.length; ) {
        const subEnd = subStart + grain;
        const n = Math.min(chunk.length - i, subEnd - fill);
        if (!subZero || !(knownZeroChunk || isAllZero(chunk.subarray(i, i + n), zeros))) {
          if (subZero) {
            // First data in this sub-block: its skipped zero prefix must be real zeroes now.
            if (fill > subStart) slot.bytes.fill(0, subStart, fill);
            subZero = false;
          }
          slot.bytes.set(chunk.subarray(i, i + n), fill);
        }
        fill += n;
        i += n;
        if (fill === subEnd) {
          slot.flags[subStart / grain] = subZero ? 0 : 1;
          subStart = fill;
          subZero = true;
          if (fill === blockSize) await submit(blockSize);
        }
      }
    }
    throwIfFailed();
    if (expected !== undefined && received !== expected) {
      throw new UserError(`${label}: the image ended after ${received} bytes, ${expected} were announced`);
    }

    // The last, partial slot: whole logical blocks go direct, the remainder buffered.
    if (fill > subStart) slot.flags[subStart / grain] = subZero ? 0 : 1;
    const directLength = fill - (fill % lbs);
    const tailLength = fill - directLength;
    let tail: { data: Uint8Array; zero: boolean } | undefined;
    if (tailLength > 0) {
      const zero = slot.flags[Math.floor(directLength / grain)] !== 1;
      tail = { data: zero ? new Uint8Array(tailLength) : slot.bytes.slice(directLength, fill), zero };
    }
    if (directLength > 0) await submit(directLength);
    flushZeroes();
    await drain();
    throwIfFailed();

    if (tail !== undefined) {
      // After every direct write and zeroing has completed: the kernel's read-modify-write
      // of this last block then sees the new data around it.
      const position = slotPos;
      if (tail.zero) zeroBytes += tail.data.length;
      else dataBytes += tail.data.length;
      if (!(tail.zero && knownZero)) {
        bufferedFd = openSync(target.path, constants.O_WRONLY);
        await writeFully(bufferedFd, tail.data, position);
        await syncFd(bufferedFd);
        const pageStart = position - (position % 4096);
        io.dropCache(bufferedFd, pageStart, position + tail.data.length - pageStart + 4096);
      }
      slotPos += tail.data.length;
    }
    await syncFd(fd);
    if (!direct && slotPos > 0) io.dropCache(fd, 0, slotPos);
    onProgress?.(slotPos);
    return { bytes: slotPos, dataBytes, zeroBytes };
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
    // Nothing may still use the descriptors (or the buffers) once they are closed.
    closing = true;
    await drain();
    await closeFd(fd);
    if (bufferedFd !== undefined) await closeFd(bufferedFd);
  }
}

export interface ReadImageFileOptions {
  /** Largest chunk read (and yielded) at once; a multiple of 4096 (default 4 MiB). */
  chunkSize?: number;
  /** Reads in flight ahead of the consumer (default 2). */
  readAhead?: number;
  /** Skip holes with SEEK_DATA / SEEK_HOLE and yield zeroChunk()s for them (default true). */
  sparse?: boolean;
  /** Holes shorter than this are read like data (default 1 MiB). */
  minHole?: number;
}

function readAt(fd: number, buffer: Uint8Array, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, 0, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead)));
  });
}

/**
 * Reads a local raw image file for writeImage without filling the page cache: O_DIRECT
 * reads into aligned buffers (falling back to buffered reads plus posix_fadvise DONTNEED
 * behind the read position), `readAhead` reads in flight, holes skipped (SEEK_DATA /
 * SEEK_HOLE) and yielded as zeroChunk()s. Each yielded chunk is valid only until the next
 * one is requested (its buffer is then reused).
 */
export async function* readImageFile(path: string, options: ReadImageFileOptions = {}): AsyncGenerator<Uint8Array> {
  const chunkSize = options.chunkSize ?? 4 * MiB;
  const ahead = options.readAhead ?? 2;
  const sparse = options.sparse ?? true;
  const minHole = options.minHole ?? MiB;
  if (!Number.isInteger(chunkSize) || chunkSize < 4096 || chunkSize % 4096 !== 0) {
    throw new RangeError(`chunkSize must be a positive multiple of 4096 (got ${chunkSize})`);
  }
  if (!Number.isInteger(ahead) || ahead < 1 || ahead > 64)
    throw new RangeError(`readAhead must be in 1..64 (got ${ahead})`);
  const io = directIo();
  let fd: number;
  let direct = true;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
  } catch (error) {
    if (errorCode(error) !== 'EINVAL') throw error;
    fd = openSync(path, constants.O_RDONLY);
    direct = false;
  }
  let bufferedFd: number | undefined;
  const size = fstatSync(fd).size;
  const ring = Array.from({ length: ahead + 1 }, () => new Uint8Array(io.allocAligned(chunkSize, MEMORY_ALIGNMENT)));
  let ringIndex = 0;
  let dropped = 0;

  // The image as segments: data ranges (<= chunkSize each) and holes (<= ZERO_CHUNK_MAX).
  function* segments(): Generator<{ position: number; length: number; hole: boolean }> {
    let position = 0;
    while (position < size) {
      let dataStart = position;
      if (sparse) {
        const found = io.seekData(fd, position);
        dataStart = found < 0 ? size : Math.min(found, size);
      }
      for (; position < dataStart; ) {
        const length = Math.min(dataStart - position, ZERO_CHUNK_MAX);
        yield { position, length, hole: true };
        position += length;
      }
      if (position >= size) return;
      let dataEnd = size;
      if (sparse) {
        // Holes shorter than minHole are read through (cheap with O_DIRECT: the kernel
        // zero-fills), so a fragmented image does not turn into many small reads.
        for (let from = position; ; ) {
          const hole = io.seekHole(fd, from);
          dataEnd = hole < 0 ? size : Math.min(hole, size);
          if (dataEnd <= from) {
            dataEnd = size; // a file system that misreports: read the rest
            break;
          }
          if (dataEnd >= size) break;
          const next = io.seekData(fd, dataEnd);
          if (next < 0 || next - dataEnd >= minHole) break;
          from = next;
        }
      }
      for (; position < dataEnd; ) {
        const length = Math.min(dataEnd - position, chunkSize);
        yield { position, length, hole: false };
        position += length;
      }
    }
  }

  const readSegment = async (buffer: Uint8Array, position: number, length: number): Promise<Uint8Array> => {
    let done = 0;
    while (done < length) {
      let n: number;
      if (direct) {
        // O_DIRECT: whole aligned blocks; the end of the file makes the last read short.
        const want = Math.min(Math.ceil((length - done) / 4096) * 4096, buffer.length - done);
        try {
          n = await readAt(fd, done === 0 ? buffer : buffer.subarray(done), want, position + done);
        } catch (error) {
          if (errorCode(error) !== 'EINVAL') throw error;
          direct = false; // alignment this file system does not accept: read buffered
          continue;
        }
      } else {
        bufferedFd ??= openSync(path, constants.O_RDONLY);
        n = await readAt(bufferedFd, done === 0 ? buffer : buffer.subarray(done), length - done, position + done);
      }
      if (n <= 0) throw new Error(`${path}: unexpected end of file at offset ${position + done} (size ${size})`);
      done += n;
    }
    return buffer.subarray(0, length);
  };

  const plan = segments();
  const pending: Promise<Uint8Array>[] = [];
  const issue = (): void => {
    const next = plan.next();
    if (next.done === true) return;
    const { position, length, hole } = next.value;
    if (hole) {
      pending.push(Promise.resolve(zeroChunk(length)));
      return;
    }
    const buffer = ring[ringIndex] ?? new Uint8Array(0);
    ringIndex = (ringIndex + 1) % ring.length;
    const promise = readSegment(buffer, position, length);
    promise.catch(() => undefined); // awaited in order below; avoid an unhandled rejection meanwhile
    pending.push(promise);
  };
  try {
    for (let i = 0; i < ahead; i++) issue();
    let position = 0;
    for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
      const chunk = await next;
      issue(); // into the buffer of the chunk yielded before this one: the consumer is done with it
      yield chunk;
      position += chunk.length;
      const cacheFd = bufferedFd ?? (direct ? undefined : fd);
      if (cacheFd !== undefined && position - dropped >= 64 * MiB) {
        io.dropCache(cacheFd, dropped, position - dropped);
        dropped = position;
      }
    }
    const cacheFd = bufferedFd ?? (direct ? undefined : fd);
    if (cacheFd !== undefined && position > dropped) io.dropCache(cacheFd, dropped, position - dropped);
  } finally {
    await Promise.allSettled(pending);
    closeSync(fd);
    if (bufferedFd !== undefined) closeSync(bufferedFd);
  }
}
