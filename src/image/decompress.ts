/**
 * Streaming decompression of compressed raw images.
 * - gzip: Node's zlib (Chromium's inflate, several times faster than GNU gzip), off the
 *   main thread.
 * - zstd, xz, bzip2: their programs in a child process, so decompression has a core of its
 *   own; the output pipe is read into reused buffers (readPipe), which keeps the garbage
 *   collector out of the way (with Node's zstd stream, collecting the 1 MiB output buffers
 *   cost as much CPU as decompressing).
 * A truncated or corrupt stream is an error naming the compression; an error of the input
 * itself (a checksum mismatch, a dropped download) is passed on as it is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { directIo } from '../disk/native.ts';
import { readPipe } from '../disk/pipe-reader.ts';
import { UserError } from '../util/errors.ts';
import type { Compression } from './magic.ts';
import type { ByteStream } from './stream-util.ts';

const CHUNK = 1024 * 1024;
const PIPE_CAPACITY = 1024 * 1024;

const PROGRAMS: Record<Exclude<Compression, 'gzip'>, { command: string; args: string[] }> = {
  zstd: { command: 'zstd', args: ['-dc', '-q'] },
  xz: { command: 'xz', args: ['-dc', '-T0'] },
  bzip2: { command: 'bzip2', args: ['-dc'] },
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

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }> {
  return new Promise((resolve) => {
    child.once('error', (spawnError) => resolve({ code: null, signal: null, spawnError }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

async function* throughProgram(input: ByteStream, name: Exclude<Compression, 'gzip'>): ByteStream {
  const { command, args } = PROGRAMS[name];
  const [readFd, writeFd] = directIo().pipe(PIPE_CAPACITY);
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ['pipe', writeFd, 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  } finally {
    closeSync(writeFd); // the child holds its copy: end of file when it exits
  }
  const exit = exited(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
  child.stdin?.on('error', () => undefined); // EPIPE when the program stops early: its exit status says why
  const fed = child.stdin ? feed(input, child.stdin) : Promise.resolve(undefined);
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
      throw new UserError(missing ? `img_id: a ${name} image needs the ${command} program, which is not installed` : `img_id: cannot run ${command}: ${status.spawnError.message}`);
    }
    const inputFailure = await fed;
    if (inputFailure !== undefined) throw inputFailure.error;
    if (status.code !== 0) throw corrupt(name, stderr.trim().split('\n').pop() || `${command} exited with ${status.code ?? status.signal}`);
  } finally {
    if (!finished) child.kill('SIGKILL');
    await output.return(undefined);
    await exit;
  }
}

export function decompress(input: ByteStream, compression: Compression): ByteStream {
  return compression === 'gzip' ? throughZlib(input, 'gzip') : throughProgram(input, compression);
}
