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
import { close, closeSync, constants, fdatasync, fstatSync, openSync, statSync, write, type Stats } from 'node:fs';
import Queue from 'yocto-queue';
import { UserError } from '../util/errors.ts';
import { directIo, type DirectIo } from './native.ts';

const MiB = 1024 * 1024;
export const DEFAULT_BLOCK_SIZE = 4 * MiB;
export const DEFAULT_ZERO_BLOCK_SIZE = 64 * 1024;
export const DEFAULT_IN_FLIGHT = 3;
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
}

export interface WriteImageResult {
  /** Image bytes consumed and placed on the disk. */
  bytes: number;
  /** Bytes written as data. */
  dataBytes: number;
  /** Bytes found to be zero: zeroed with zeroRange, or skipped on a known-zero target. */
  zeroBytes: number;
}

interface Slot {
  bytes: Uint8Array;
  /** Per zero-detection sub-block: 1 = holds data, 0 = all zero (its bytes may be stale). */
  flags: Uint8Array;
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
        throw new UserError(`${target.path}: cannot open for writing (${errorCode(again) ?? String(again)})`, { cause: again });
      }
    }
    throw new UserError(`${target.path}: cannot open for writing (${errorCode(error) ?? String(error)})`, { cause: error });
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
    if (isBlock && grain % lbs !== 0) throw new RangeError(`zeroBlockSize ${grain} is not a multiple of the logical block size ${lbs}`);

    for await (const chunk of input) {
      throwIfFailed();
      if (received + chunk.length > limit) {
        throw new UserError(`${label}: the image is larger than the disk (${limit} bytes); nothing beyond the disk end was written`);
      }
      if (expected !== undefined && received + chunk.length > expected) {
        throw new UserError(`${label}: the image is larger than its announced size (${expected} bytes)`);
      }
      received += chunk.length;
      for (let i = 0; i < chunk.length; ) {
        const subEnd = subStart + grain;
        const n = Math.min(chunk.length - i, subEnd - fill);
        const piece = chunk.subarray(i, i + n);
        if (!subZero || !isAllZero(piece, zeros)) {
          if (subZero) {
            // First data in this sub-block: its skipped zero prefix must be real zeroes now.
            if (fill > subStart) slot.bytes.fill(0, subStart, fill);
            subZero = false;
          }
          slot.bytes.set(piece, fill);
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
    if (error instanceof UserError || error instanceof RangeError) throw error;
    throw new UserError(`${label}: writing the image failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  } finally {
    // Nothing may still use the descriptors (or the buffers) once they are closed.
    closing = true;
    await drain();
    await closeFd(fd);
    if (bufferedFd !== undefined) await closeFd(bufferedFd);
  }
}
