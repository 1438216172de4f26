import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync } from 'node:fs';
import { describe, it } from 'node:test';
import { directIo } from '../../src/disk/native.ts';
import { readPipe } from '../../src/disk/pipe-reader.ts';

/** A child writing `data` (through cat) into the write end of a fresh pipe. */
function producer(data: Buffer) {
  const [readFd, writeFd] = directIo().pipe(1024 * 1024);
  const child = spawn('cat', [], { stdio: ['pipe', writeFd, 'ignore'] });
  closeSync(writeFd);
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(data);
  return { readFd, child };
}

describe('readPipe', () => {
  it('yields exactly the bytes written, in full chunks but the last, and closes the read end', async () => {
    const data = randomBytes(10 * 1024 * 1024 + 12345);
    const { readFd } = producer(data);
    const got = createHash('sha256');
    const sizes: number[] = [];
    for await (const chunk of readPipe(readFd, { chunkSize: 1024 * 1024 })) {
      got.update(chunk);
      sizes.push(chunk.length);
    }
    assert.equal(got.digest('hex'), createHash('sha256').update(data).digest('hex'));
    assert.deepEqual(sizes.slice(0, -1), Array(10).fill(1024 * 1024));
    assert.equal(sizes.at(-1), 12345);
    assert.throws(() => fstatSync(readFd), /EBADF/);
  });

  it('an empty stream yields nothing', async () => {
    const { readFd } = producer(Buffer.alloc(0));
    const chunks = [];
    for await (const chunk of readPipe(readFd)) chunks.push(chunk);
    assert.deepEqual(chunks, []);
  });

  it('a consumer that stops early gets the read end closed once the writer is gone', async () => {
    const { readFd, child } = producer(randomBytes(8 * 1024 * 1024));
    const reader = readPipe(readFd, { chunkSize: 64 * 1024 });
    assert.equal((await reader.next()).value?.length, 64 * 1024);
    child.kill('SIGKILL');
    await reader.return(undefined);
    assert.throws(() => fstatSync(readFd), /EBADF/);
  });
});
