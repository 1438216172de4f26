/**
 * The media that carry the config document into the helper VM: a 1.44 MB floppy holding a
 * ustar archive (tar-stream) with one file, config.json. Nothing is mounted, on the host or
 * in the helper: the helper reads the archive straight from /dev/fd0
 * (helper/config-floppy.ts). A personality too large for the floppy goes on an extra
 * read-only virtio disk instead. Both are files that never have a name (O_TMPFILE in the
 * private 0700 work directory, 0600; where that is unsupported, a file unlinked before a
 * byte is written), handed over as read-only descriptors that QEMU inherits: the plaintext
 * (password, keys, user-data) is gone with the last descriptor, however the process ends.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pack } from 'tar-stream';
import { UserError } from '../util/errors.ts';
import type { ConfigDocument } from './config-document.ts';

export const FLOPPY_BYTES = 1440 * 1024;
/** The archive's file on the floppy. */
export const CONFIG_FILE_NAME = 'config.json';
/** Above this the personality goes on its own disk (room left for the tar header and end blocks). */
const FLOPPY_PAYLOAD_LIMIT = FLOPPY_BYTES - 4096;
const PERSONALITY_DISK_SERIAL = 'snf-personality';

/** Read-only descriptors of nameless files. */
export interface ConfigMedia {
  floppyFd: number;
  personalityDiskFd?: number;
}

/** Linux's O_TMPFILE (__O_TMPFILE | O_DIRECTORY); Node does not export it. */
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;

function openNameless(dir: string): number {
  try {
    return openSync(dir, O_TMPFILE | constants.O_RDWR, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EOPNOTSUPP' && code !== 'EISDIR' && code !== 'EINVAL') throw error;
    const path = join(dir, `.media-${randomBytes(8).toString('hex')}`);
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    unlinkSync(path);
    return fd;
  }
}

/** `bytes` in a file without a name inside `dir`, as a read-only descriptor. */
function namelessFile(dir: string, bytes: Buffer): number {
  const fd = openNameless(dir);
  try {
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, done);
    // A read-only open file description of the same file (QEMU opens read-only media O_RDONLY).
    return openSync(`/proc/self/fd/${fd}`, constants.O_RDONLY);
  } finally {
    closeSync(fd);
  }
}

export function closeConfigMedia(media: ConfigMedia): void {
  for (const fd of [media.floppyFd, media.personalityDiskFd]) {
    if (fd === undefined) continue;
    try {
      closeSync(fd);
    } catch {
      // Already closed.
    }
  }
}

/** The floppy's bytes: the archive, zero-padded to FLOPPY_BYTES. */
export async function configFloppyImage(doc: ConfigDocument): Promise<Buffer> {
  const archive = pack();
  archive.entry({ name: CONFIG_FILE_NAME, mode: 0o600, uid: 0, gid: 0, mtime: new Date(0) }, JSON.stringify(doc));
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive) chunks.push(chunk as Buffer);
  const tar = Buffer.concat(chunks);
  if (tar.byteLength > FLOPPY_BYTES)
    throw new UserError(`the helper configuration (${tar.byteLength} bytes) does not fit on the config floppy`);
  const image = Buffer.alloc(FLOPPY_BYTES);
  tar.copy(image);
  return image;
}

/** Builds the floppy (and the personality disk when needed) as nameless files inside `workDir` (0700). */
export async function buildConfigMedia(doc: ConfigDocument, workDir: string): Promise<ConfigMedia> {
  const size = Buffer.byteLength(JSON.stringify(doc));
  if (size <= FLOPPY_PAYLOAD_LIMIT) return { floppyFd: namelessFile(workDir, await configFloppyImage(doc)) };
  const personality = Buffer.from(JSON.stringify(doc.personality));
  const padded = Buffer.alloc(Math.ceil(personality.byteLength / 512) * 512);
  personality.copy(padded);
  const slim: ConfigDocument = {
    ...doc,
    personality: [],
    personalityDisk: { serial: PERSONALITY_DISK_SERIAL, bytes: personality.byteLength },
  };
  if (Buffer.byteLength(JSON.stringify(slim)) > FLOPPY_PAYLOAD_LIMIT)
    throw new UserError(
      'the helper configuration does not fit on the config floppy even without the personality (auth_keys or cloud_userdata too large)',
    );
  const floppy = await configFloppyImage(slim);
  const personalityDiskFd = namelessFile(workDir, padded);
  try {
    return { floppyFd: namelessFile(workDir, floppy), personalityDiskFd };
  } catch (error) {
    closeSync(personalityDiskFd);
    throw error;
  }
}
