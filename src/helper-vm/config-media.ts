/**
 * The media that carry the config document into the helper VM: a 1.44 MB ext2 floppy made
 * without mounting anything (mke2fs -d), in a private 0700 directory, files 0600. A
 * personality too large for the floppy goes on an extra read-only virtio disk instead.
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../util/errors.ts';
import type { ConfigDocument } from './config-document.ts';

export const FLOPPY_BYTES = 1440 * 1024;
/** Above this the personality goes on its own disk (ext2 overhead keeps ~1.3 MB usable). */
export const FLOPPY_PAYLOAD_LIMIT = 1200 * 1024;
export const PERSONALITY_DISK_SERIAL = 'snf-personality';

export interface ConfigMedia {
  floppy: string;
  personalityDisk?: string;
}

async function makeFloppy(doc: ConfigDocument, workDir: string): Promise<string> {
  const { execa } = await import('execa');
  const staging = join(workDir, 'floppy-content');
  await mkdir(staging, { mode: 0o700 });
  try {
    await writeFile(join(staging, 'config.json'), JSON.stringify(doc), { mode: 0o600 });
    const floppy = join(workDir, 'config-floppy.img');
    try {
      await execa('mke2fs', ['-q', '-F', '-t', 'ext2', '-L', 'snfconfig', '-m', '0', '-d', staging, floppy, '1440k'], { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' }, extendEnv: false });
    } catch (error) {
      throw new UserError(`cannot build the helper config floppy with mke2fs: ${((error as { stderr?: string }).stderr ?? String(error)).trim().split('\n')[0] ?? ''}`);
    }
    return floppy;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
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
  const floppy = await makeFloppy(slim, workDir);
  const st = await stat(floppy);
  if (st.size !== FLOPPY_BYTES) throw new UserError(`config floppy has ${st.size} bytes, not ${FLOPPY_BYTES}`);
  return { floppy, personalityDisk };
}
