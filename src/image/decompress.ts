/**
 * Streaming decompression of compressed raw images. gzip and zstd use Node's zlib (native,
 * off the main thread); xz and bzip2 use the xz and bzip2 programs (multi-threaded xz).
 * A truncated or corrupt stream is an error naming the compression.
 */
import { Readable } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { execa } from 'execa';
import { UserError } from '../util/errors.ts';
import type { Compression } from './magic.ts';
import type { ByteStream } from './stream-util.ts';

const CHUNK = 1024 * 1024;

async function* throughZlib(input: ByteStream, transform: NodeJS.ReadWriteStream, name: Compression): ByteStream {
  const source = Readable.from(input, { objectMode: false });
  source.on('error', (e) => (transform as unknown as Readable).destroy(e));
  source.pipe(transform as unknown as NodeJS.WritableStream);
  try {
    for await (const chunk of transform as unknown as AsyncIterable<Buffer>) yield chunk;
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`img_id: the ${name} stream is corrupt or truncated (${error instanceof Error ? error.message : String(error)})`);
  }
}

async function* throughProgram(input: ByteStream, command: string, args: string[], name: Compression): ByteStream {
  const child = execa(command, args, { input: Readable.from(input), buffer: false, stdout: 'pipe', stderr: 'pipe', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, extendEnv: false });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  if (!child.stdout) throw new UserError(`cannot run ${command}`);
  try {
    yield* child.stdout;
    await child;
  } catch (error) {
    child.kill();
    const spawnError = error instanceof Error && /ENOENT/.test(error.message);
    if (spawnError) throw new UserError(`img_id: a ${name} image needs the ${command} program, which is not installed`);
    throw new UserError(`img_id: the ${name} stream is corrupt or truncated (${stderr.trim().split('\n').pop() ?? 'decompression failed'})`);
  }
}

export function decompress(input: ByteStream, compression: Compression): ByteStream {
  switch (compression) {
    case 'gzip':
      return throughZlib(input, createGunzip({ chunkSize: CHUNK }), 'gzip');
    case 'zstd':
      return throughZlib(input, createZstdDecompress({ chunkSize: CHUNK }), 'zstd');
    case 'xz':
      return throughProgram(input, 'xz', ['-dc', '-T0'], 'xz');
    case 'bzip2':
      return throughProgram(input, 'bzip2', ['-dc'], 'bzip2');
  }
}
