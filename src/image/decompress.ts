/**
 * Streaming decompression of compressed raw images.
 * - gzip: Node's zlib (Chromium's inflate, several times faster than GNU gzip), off the
 *   main thread.
 * - zstd: in this process (libzstd in the addon), windows up to 128 MiB as the zstd
 *   program allows by default.
 * - xz (at most 512 MiB of memory), bzip2 (address space capped by prlimit): their
 *   programs in a child process, so decompression has a core of its own; the output pipe is read into reused buffers (readPipe), which keeps the garbage
 *   collector out of the way (with Node's zstd stream, collecting the 1 MiB output buffers
 *   cost as much CPU as decompressing). A local image file is the program's stdin itself
 *   (decompressFile): fed through this process, the program waited for input whenever the
 *   event loop was busy with its output (zstd: 2.0-2.5 s of 2.7 s spent waiting, measured).
 * A truncated or corrupt stream is an error naming the compression; an error of the input
 * itself (a checksum mismatch, a dropped download) is passed on as it is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import Queue from 'yocto-queue';
import { directIo } from '../disk/native.ts';
import { readPipe } from '../disk/pipe-reader.ts';
import { UserError } from '../util/errors.ts';
import type { Compression } from './magic.ts';
import type { ByteStream } from './stream-util.ts';

const CHUNK = 1024 * 1024;
const PIPE_CAPACITY = 4 * 1024 * 1024;

/** Most memory xz may use (its dictionaries: 64 MiB for xz -9; threads within it). */
const XZ_MEMLIMIT_MIB = 512;
/** bzip2 needs under 8 MiB whatever its input: its address space is capped (prlimit). */
const BZIP2_ADDRESS_SPACE = 256 * 1024 * 1024;

/** Each program, and the argv that runs it (`command` names it in errors). */
const PROGRAMS: Record<Exclude<Compression, 'gzip'>, { command: string; argv: string[] }> = {
  zstd: { command: 'zstd', argv: ['zstd', '-dc', '-q'] },
  xz: { command: 'xz', argv: ['xz', '-dc', '-T0', `--memlimit-decompress=${XZ_MEMLIMIT_MIB}MiB`] },
  bzip2: { command: 'bzip2', argv: ['prlimit', `--as=${BZIP2_ADDRESS_SPACE}`, '--', 'bzip2', '-dc'] },
};

function corrupt(name: Compression, detail: string): UserError {
  return new UserError(`img_id: the ${name} stream is corrupt or truncated (${detail})`);
}

/**
 * stream.write that resolves once the stream has taken the chunk (true), or false when the
 * stream failed or closed first (a zlib stream that fails never calls back).
 */
function written(sink: Writable, chunk: Uint8Array): Promise<boolean> {
  if (sink.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const closed = (): void => resolve(false);
    sink.once('close', closed);
    sink.write(chunk, (error) => {
      sink.off('close', closed);
      resolve(error === null || error === undefined);
    });
  });
}

/**
 * Writes `input` into `sink` (a program's stdin, a zlib stream) one chunk at a time, each
 * taken before the next is read: sources such as readImageFile reuse their buffers. Never
 * rejects: an error of the input destroys the sink (the decompressor then sees a cut-off
 * stream) and is returned, to be reported instead of the decompressor's complaint.
 */
async function feed(input: ByteStream, sink: Writable): Promise<{ error: unknown } | undefined> {
  try {
    for await (const chunk of input) {
      if (!(await written(sink, chunk))) return undefined; // the decompressor stopped: its own error says why
    }
    sink.end();
    return undefined;
  } catch (error) {
    sink.destroy();
    return { error };
  }
}

async function* throughZlib(input: ByteStream, name: Compression): ByteStream {
  const gunzip = createGunzip({ chunkSize: CHUNK });
  const fed = feed(input, gunzip);
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) yield chunk;
  } catch (error) {
    const inputFailure = await fed;
    if (inputFailure !== undefined) throw inputFailure.error;
    throw corrupt(name, error instanceof Error ? error.message : String(error));
  }
  const inputFailure = await fed;
  if (inputFailure !== undefined) throw inputFailure.error;
}

function exited(
  child: ChildProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }> {
  return new Promise((resolve) => {
    child.once('error', (spawnError) => resolve({ code: null, signal: null, spawnError }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

/** Where a program's compressed input comes from: a stream this process feeds, or a file descriptor it reads itself. */
type ProgramInput = { stream: ByteStream } | { fd: number };

async function* throughProgram(input: ProgramInput, name: Exclude<Compression, 'gzip'>): ByteStream {
  const { command, argv } = PROGRAMS[name];
  const [readFd, writeFd] = directIo().pipe(PIPE_CAPACITY);
  let child: ChildProcess;
  try {
    child = spawn(argv[0] as string, argv.slice(1), {
      stdio: ['fd' in input ? input.fd : 'pipe', writeFd, 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
  } finally {
    closeSync(writeFd); // the child holds its copy: end of file when it exits
  }
  const exit = exited(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
  child.stdin?.on('error', () => undefined); // EPIPE when the program stops early: its exit status says why
  const fed = child.stdin && 'stream' in input ? feed(input.stream, child.stdin) : Promise.resolve(undefined);
  const output = readPipe(readFd);
  let finished = false;
  try {
    for (;;) {
      const next = await output.next();
      if (next.done === true) break;
      yield next.value;
    }
    const status = await exit;
    finished = true;
    if (status.spawnError !== undefined) {
      const missing = (status.spawnError as NodeJS.ErrnoException).code === 'ENOENT';
      throw new UserError(
        missing
          ? `img_id: a ${name} image needs the ${command} program, which is not installed`
          : `img_id: cannot run ${command}: ${status.spawnError.message}`,
      );
    }
    const inputFailure = await fed;
    if (inputFailure !== undefined) throw inputFailure.error;
    // prlimit exits 127 when it cannot find the program.
    if (status.code === 127 && argv[0] !== command)
      throw new UserError(`img_id: a ${name} image needs the ${command} program, which is not installed`);
    if (name === 'xz' && /Memory usage limit reached/.test(stderr))
      throw new UserError(
        `img_id: the xz image needs more than ${XZ_MEMLIMIT_MIB} MiB of memory to decompress (its dictionary is too large)`,
      );
    if (status.code !== 0)
      throw corrupt(name, stderr.trim().split('\n').pop() || `${command} exited with ${status.code ?? status.signal}`);
  } finally {
    if (!finished) child.kill('SIGKILL');
    await output.return(undefined);
    await exit;
  }
}

/**
 * zstd in this process (libzstd in the addon), decoding on the threadpool straight into a
 * ring of output buffers while the consumer handles the previous one. Against the zstd
 * program behind a pipe this saves two copies of every byte and the program's stalls on a
 * full pipe (measured on the benchmark image: see README).
 */
async function* throughNativeZstd(input: ByteStream): ByteStream {
  const io = directIo();
  const decoder = io.zstdDecoder();
  // Filled outputs wait here for the consumer; the producer stays at most `ahead` in front.
  const ahead = 1;
  const ring = Array.from({ length: ahead + 2 }, () => new Uint8Array(CHUNK));
  const ready = new Queue<Uint8Array>();
  let wake: (() => void) | undefined;
  let space: (() => void) | undefined;
  let finished = false;
  let stopped = false;
  let failure: { error: unknown } | undefined;
  const signal = (): void => {
    wake?.();
    wake = undefined;
  };
  const produce = async (): Promise<void> => {
    let index = 0;
    let out = ring[index] as Uint8Array;
    let fill = 0;
    let frameEnded = false;
    let sawData = false;
    const emit = async (): Promise<void> => {
      ready.enqueue(out.subarray(0, fill));
      signal();
      while (ready.size > ahead && !stopped) await new Promise<void>((resolve) => (space = resolve));
      index = (index + 1) % ring.length;
      out = ring[index] as Uint8Array;
      fill = 0;
    };
    const step = async (chunk: Uint8Array, offset: number): Promise<number> => {
      let result: [number, number, number];
      try {
        result = await io.zstdDecode(decoder, chunk, offset, out, fill);
      } catch (error) {
        if ((error as { code?: string }).code === 'EZSTDWINDOW')
          throw new UserError(
            'img_id: the zstd image needs a decoding window larger than 128 MiB (compressed with --long=28 or more); recompress it with at most --long=27',
          );
        throw corrupt('zstd', error instanceof Error ? error.message.replace(/^zstd: /, '') : String(error));
      }
      const [consumed, produced, ended] = result;
      if (consumed === 0 && produced === 0 && offset < chunk.length)
        throw corrupt('zstd', 'the decoder made no progress');
      fill += produced;
      // A call that did nothing (the final flush) says nothing about the frame.
      if (consumed > 0 || produced > 0) frameEnded = ended === 1;
      if (fill === out.length) await emit();
      return consumed;
    };
    try {
      for await (const chunk of input) {
        if (stopped) return;
        if (chunk.length > 0) sawData = true;
        for (let offset = 0; offset < chunk.length && !stopped; ) offset += await step(chunk, offset);
      }
      if (stopped) return;
      // Flush what zstd still holds: call with no new input until it produces nothing.
      const empty = new Uint8Array(0);
      for (;;) {
        const before = fill;
        const outBefore = out;
        await step(empty, 0);
        if (out === outBefore && fill === before) break;
      }
      if (!sawData) throw corrupt('zstd', 'empty stream');
      if (!frameEnded) throw corrupt('zstd', 'the stream ends inside a frame');
      if (fill > 0) await emit();
    } catch (error) {
      failure = { error };
    } finally {
      finished = true;
      signal();
    }
  };
  const producing = produce();
  try {
    for (;;) {
      const next = ready.dequeue();
      if (next !== undefined) {
        space?.();
        space = undefined;
        yield next;
        continue;
      }
      if (finished) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    if (failure !== undefined) throw failure.error;
  } finally {
    stopped = true;
    space?.();
    await producing;
  }
}

export function decompress(input: ByteStream, compression: Compression): ByteStream {
  if (compression === 'gzip') return throughZlib(input, 'gzip');
  if (compression === 'zstd') return throughNativeZstd(input);
  return throughProgram({ stream: input }, compression);
}

/** The compressions whose program reads a local file itself (xz, bzip2); gzip and zstd decode in this process. */
export function readsFileItself(compression: Compression): compression is 'xz' | 'bzip2' {
  return compression === 'xz' || compression === 'bzip2';
}

/** Offset of an open file descriptor, shared with the child that reads it (/proc/self/fdinfo). */
function filePosition(fd: number): number {
  return Number(/^pos:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? 0);
}

const POSITION_EVERY_MS = 200;
const DROP_CACHE_EVERY = 8 * 1024 * 1024;

/**
 * Decompresses a local image file with its program reading the file directly (its stdin is
 * the file). `onPosition` gets the compressed bytes consumed so far (the shared file
 * offset), a few times a second; the pages read are dropped from the page cache behind the
 * read position, as readImageFile does with O_DIRECT.
 */
export async function* decompressFile(
  path: string,
  compression: 'xz' | 'bzip2',
  onPosition: (bytes: number) => void,
): ByteStream {
  const fd = openSync(path, 'r');
  const io = directIo();
  let dropped = 0;
  let reported = 0;
  const update = (final = false): void => {
    const position = filePosition(fd);
    onPosition(position);
    if (position - dropped >= DROP_CACHE_EVERY || (final && position > 0)) {
      io.dropCache(fd, 0, position);
      dropped = position;
    }
  };
  try {
    for await (const chunk of throughProgram({ fd }, compression)) {
      const now = Date.now();
      if (now - reported >= POSITION_EVERY_MS) {
        reported = now;
        update();
      }
      yield chunk;
    }
    update(true);
  } finally {
    closeSync(fd);
  }
}
