/**
 * A static file server on 127.0.0.1 for the image benchmark, in a process of its own (the
 * benchmark blocks its own event loop in spawnSync while the tools run). Files are read
 * with O_DIRECT (readImageFile), so serving adds nothing to the page-cache growth measured.
 * Prints the port. Usage: node test/bench/file-server.ts DIR
 */
import { statSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { readImageFile } from '../../src/disk/image-file-reader.ts';

const dir = process.argv[2] ?? '.';
const server = createServer((req, res) => {
  const name = normalize(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')).replace(/^(\.\.(\/|$))+/, '');
  const file = join(dir, name);
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    res.statusCode = 404;
    res.end();
    return;
  }
  res.setHeader('content-length', String(size));
  void send(file, res);
});

/** Each chunk is written (and taken by the socket) before the next: readImageFile reuses buffers. */
async function send(file: string, res: ServerResponse): Promise<void> {
  try {
    for await (const chunk of readImageFile(file, { sparse: false })) {
      await new Promise<void>((resolve, reject) => res.write(chunk, (error) => (error ? reject(error) : resolve())));
    }
    res.end();
  } catch {
    res.destroy();
  }
}
server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
