/**
 * The directio Node-API addon (src/disk/native/directio.c, built by scripts/build-native.ts
 * into dist/directio.node): aligned memory for O_DIRECT, BLKZEROOUT / fallocate zeroing,
 * posix_fadvise, block sizes, pipes with a chosen capacity; and the zstd decoder
 * (src/image/native/zstd-decoder.c, libzstd linked in). Inside the single executable the addon is an SEA asset: it
 * is written to a private temporary file, loaded, and the file is deleted at once.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSea } from 'node:sea';
import { readAssetBytes } from '../util/assets.ts';

const NATIVE_ASSET = 'dist/directio.node';

export interface DirectIo {
  /** `size` bytes of memory aligned to `alignment` (a power of two), freed by the GC. */
  allocAligned(size: number, alignment: number): ArrayBuffer;
  /**
   * Makes [offset, offset+length) read as zeroes, on a threadpool thread: BLKZEROOUT for
   * block devices, fallocate(ZERO_RANGE) (else PUNCH_HOLE|KEEP_SIZE) for regular files.
   * Rejects with a Node-style system error (code 'EOPNOTSUPP', ...).
   */
  zeroRange(fd: number, offset: number, length: number, isBlockDevice: boolean): Promise<void>;
  /** posix_fadvise(POSIX_FADV_DONTNEED): drops clean cached pages of the range. */
  dropCache(fd: number, offset: number, length: number): void;
  /** BLKSSZGET for block devices; for files the O_DIRECT offset alignment (statx) or 512. */
  logicalBlockSize(fd: number): number;
  /** BLKGETSIZE64. */
  blockDeviceSize(fd: number): number;
  /** lseek(SEEK_DATA): the next offset >= `offset` holding data, or -1 when none does. */
  seekData(fd: number, offset: number): number;
  /** lseek(SEEK_HOLE): the next offset >= `offset` in a hole (the file size at the end), -1 beyond the end. */
  seekHole(fd: number, offset: number): number;
  /** pipe2(O_CLOEXEC) with F_SETPIPE_SZ(capacity) tried: [read end, write end]. */
  pipe(capacity: number): [number, number];
  /**
   * Reads `fd` into `buffer` until it is full or the stream ends, looping over read(2) on
   * one threadpool thread; resolves with the bytes read (short only at the end).
   */
  readFull(fd: number, buffer: Uint8Array): Promise<number>;
  /** A new zstd decoding stream (freed by the GC). */
  zstdDecoder(): ZstdDecoderHandle;
  /**
   * Decodes input[inOffset..] into output[outOffset..] on a threadpool thread until the
   * input is used up or the output is full: [input bytes consumed, output bytes produced,
   * 1 if the last step completed a frame]. One call at a time per decoder; rejects with
   * code 'EZSTD' and zstd's message on corrupt data.
   */
  zstdDecode(
    decoder: ZstdDecoderHandle,
    input: Uint8Array,
    inOffset: number,
    output: Uint8Array,
    outOffset: number,
  ): Promise<[number, number, number]>;
}

/** Opaque handle of a native zstd decoding stream. */
declare const zstdDecoderBrand: unique symbol;
type ZstdDecoderHandle = { readonly [zstdDecoderBrand]: true };

const FUNCTIONS = [
  'allocAligned',
  'zeroRange',
  'dropCache',
  'logicalBlockSize',
  'blockDeviceSize',
  'seekData',
  'seekHole',
  'pipe',
  'readFull',
  'zstdDecoder',
  'zstdDecode',
] as const;

function isDirectIo(value: unknown): value is DirectIo {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return FUNCTIONS.every((name) => typeof record[name] === 'function');
}

function dlopen(path: string): DirectIo {
  const module: { exports: unknown } = { exports: {} };
  process.dlopen(module, path);
  if (!isDirectIo(module.exports)) throw new Error(`${path}: not the directio addon (missing functions)`);
  return module.exports;
}

/** Path of the addon in the source tree (src/disk/ -> ../../dist/directio.node). */
export function sourceAddonPath(): string {
  return join(import.meta.dirname, '..', '..', NATIVE_ASSET);
}

/** Writes the embedded addon to a private file (dir 0700, file 0500), loads it, deletes it. */
function loadFromSea(): DirectIo {
  const bytes = readAssetBytes(NATIVE_ASSET);
  // A noexec /tmp makes dlopen fail ("failed to map segment"): try other places too.
  const places = [...new Set([tmpdir(), '/run', '/var/tmp', '/dev/shm'])];
  const failures: string[] = [];
  for (const place of places) {
    let dir: string;
    try {
      dir = mkdtempSync(join(place, 'snf-image-native-'));
    } catch (error) {
      failures.push(`${place}: ${(error as Error).message}`);
      continue;
    }
    try {
      const file = join(dir, 'directio.node');
      writeFileSync(file, bytes, { mode: 0o500, flag: 'wx' });
      return dlopen(file);
    } catch (error) {
      failures.push(`${place}: ${(error as Error).message}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  throw new Error(`cannot load the embedded directio addon: ${failures.join('; ')}`);
}

let loaded: DirectIo | undefined;

/** The addon, loaded once. */
export function directIo(): DirectIo {
  if (loaded !== undefined) return loaded;
  if (isSea()) {
    loaded = loadFromSea();
  } else {
    const path = sourceAddonPath();
    if (!existsSync(path)) throw new Error(`${path} is missing: run node scripts/build-native.ts (or npm run build)`);
    loaded = dlopen(path);
  }
  return loaded;
}
