/**
 * The media that carry the config document into the helper VM: a 1.44 MB floppy holding a
 * ustar archive (tar-stream) with one file, config.json, written in a private 0700
 * directory as a 0600 file. Nothing is mounted, on the host or in the helper: the helper
 * reads the archive straight from /dev/fd0 (helper/config-floppy.ts). A personality too
 * large for the floppy goes on an extra read-only virtio disk instead.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pack } from 'tar-stream';
import { UserError } from '../util/errors.ts';
import type { ConfigDocument } from './config-document.ts';

export const FLOPPY_BYTES = 1440 * 1024;
/** The archive's file on the floppy. */
export const CONFIG_FILE_NAME = 'config.json';
/** Above this the personality goes on its own disk (room left for the tar header and end blocks). */
export const FLOPPY_PAYLOAD_LIMIT = FLOPPY_BYTES - 4096;
export const PERSONALITY_DISK_SERIAL = 'snf-personality';

export interface ConfigMedia {
  floppy: string;
  personalityDisk?: string;
}

/** The floppy's bytes: the archive, zero-padded to FLOPPY_BYTES. */
export async function configFloppyImage(doc: ConfigDocument): Promise<Buffer> {
  const archive = pack();
  archive.entry({ name: CONFIG_FILE_NAME, mode: 0o600, uid: 0, gid: 0, mtime: new Date(0) }, JSON.stringify(doc));
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive) chunks.push(chunk as Buffer);
  const tar = Buffer.concat(chunks);
  if (tar.byteLength > FLOPPY_BYTES) throw new UserError(`the helper configuration (${tar.byteLength} bytes) does not fit on the config floppy`);
  const image = Buffer.alloc(FLOPPY_BYTES);
  tar.copy(image);
  return image;
}

async function makeFloppy(doc: ConfigDocument, workDir: string): Promise<string> {
  const floppy = join(workDir, 'config-floppy.img');
  await writeFile(floppy, await configFloppyImage(doc), { mode: 0o600 });
  return floppy;
}

/** Builds the floppy (and the personality disk when needed) inside `workDir` (0700). */
export async function buildConfigMedia(doc: ConfigDocument, workDir: string): Promise<ConfigMedia> {
  const size = Buffer.byteLength(JSON.stringify(doc));
  if (size <= FLOPPY_PAYLOAD_LIMIT) return { floppy: await makeFloppy(doc, workDir) };
  const personality = Buffer.from(JSON.stringify(doc.personality));
  const padded = Buffer.alloc(Math.ceil(personality.byteLength / 512) * 512);
  personality.copy(padded);
  const personalityDisk = join(workDir, 'personality.img');
  await writeFile(personalityDisk, padded, { mode: 0o600 });
  const slim: ConfigDocument = { ...doc, personality: [], personalityDisk: { serial: PERSONALITY_DISK_SERIAL, bytes: personality.byteLength } };
  if (Buffer.byteLength(JSON.stringify(slim)) > FLOPPY_PAYLOAD_LIMIT) throw new UserError('the helper configuration does not fit on the config floppy even without the personality (auth_keys or cloud_userdata too large)');
  return { floppy: await makeFloppy(slim, workDir), personalityDisk };
}
