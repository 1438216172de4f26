/**
 * The config document from the helper's floppy: a ustar archive holding config.json
 * (src/helper-vm/config-media.ts), read straight from the device with tar-stream. Nothing
 * is mounted and only the archive's first blocks are read, not the whole floppy.
 */
import { createReadStream } from 'node:fs';
import { extract } from 'tar-stream';
import { CONFIG_FILE_NAME, FLOPPY_BYTES } from '../src/helper-vm/config-media.ts';

export function readConfigFloppy(device: string): Promise<string> {
  const source = createReadStream(device, { highWaterMark: 16 * 1024 });
  const archive = extract();
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, text?: string) => {
      if (settled) return;
      settled = true;
      source.destroy();
      archive.destroy();
      if (error) reject(error);
      else resolve(text as string);
    };
    const broken = (error: Error) => finish(new Error(`${device}: not a config floppy (${error.message})`));
    archive.on('entry', (header, stream, next) => {
      // An entry cut short errors on its own stream too: unheard, that error would kill PID 1.
      stream.on('error', broken);
      if (header.name !== CONFIG_FILE_NAME || header.type !== 'file') {
        stream.on('end', next);
        stream.resume();
        return;
      }
      if ((header.size ?? 0) > FLOPPY_BYTES)
        return finish(new Error(`${device}: ${CONFIG_FILE_NAME} is larger than a floppy`));
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
    });
    archive.on('finish', () => finish(new Error(`${device} holds no ${CONFIG_FILE_NAME}`)));
    archive.on('error', broken);
    source.on('error', (error) => finish(new Error(`cannot read ${device}: ${error.message}`)));
    source.pipe(archive);
  });
}
