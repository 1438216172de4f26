/**
 * Reading and writing files inside the mounted guest, never following a link out of it and
 * never following a link the image planted at a name the helper writes: every task changes
 * the guest through these primitives only.
 *
 * - Directories are reached with guest-path.ts's walk (one open descriptor per directory,
 *   links resolved inside the guest); missing ones are created on the descriptor.
 * - A file is written to an unpredictable temporary name created with
 *   O_CREAT|O_EXCL|O_NOFOLLOW, its owner and mode set on the descriptor (fchown, then
 *   fchmod, so set-ID bits survive), then renamed over the final name in the same open
 *   directory: a link at the final name is replaced, never followed.
 * - Removal unlinks the name itself (a link, never its target).
 * - Reads open the final file with O_NOFOLLOW|O_NONBLOCK and accept regular files only
 *   (a FIFO or device node of the image is a one-line error, never a hang).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { posix } from 'node:path';
import { TaskError } from './exec.ts';
import {
  at,
  lstatAt,
  openDirectoryAt,
  resolveInGuest,
  walkGuest,
  type GuestLocation,
  type WalkOptions,
} from './guest-path.ts';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;

/** Directories GuestFs.write creates on the way: 0755, root's. */
const PARENTS = { mode: 0o755, uid: 0, gid: 0 } as const;

/** A regular file of the guest with its metadata. */
export interface GuestFileData {
  data: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

export class GuestFs {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** Host path of a guest path (links resolved inside the guest): for reading directories and for programs. */
  path(guestPath: string, followFinal = true): string {
    return resolveInGuest(this.root, guestPath, followFinal);
  }

  private with<T>(guestPath: string, options: WalkOptions, use: (location: GuestLocation) => T): T {
    const location = walkGuest(this.root, guestPath, options);
    try {
      return use(location);
    } finally {
      location.close();
    }
  }

  exists(guestPath: string): boolean {
    return this.with(guestPath, {}, (l) => l.parentExists && lstatAt(l.atPath) !== undefined);
  }

  /** Whether the entry itself exists (a link counts, dangling or not; it is not followed). */
  present(guestPath: string): boolean {
    return this.with(guestPath, { followFinal: false }, (l) => l.parentExists && lstatAt(l.atPath) !== undefined);
  }

  isDirectory(guestPath: string): boolean {
    return this.with(guestPath, {}, (l) => l.parentExists && lstatAt(l.atPath)?.isDirectory() === true);
  }

  /** A regular file's bytes and metadata; a missing or non-regular file is a one-line error naming the guest path. */
  private readRegular(guestPath: string): GuestFileData {
    return this.with(guestPath, {}, (l) => {
      const via = l.guestPath !== posix.normalize(guestPath) ? ` (a link to ${l.guestPath} inside the image)` : '';
      let fd: number;
      try {
        fd = openSync(l.atPath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR' || !l.parentExists)
          throw new TaskError(`the image's ${guestPath}${via} does not exist`);
        if (code === 'ELOOP') throw new TaskError(`the image's ${guestPath}${via} is not a regular file`);
        throw e;
      }
      try {
        const st = fstatSync(fd);
        if (st.isDirectory()) throw new TaskError(`the image's ${guestPath}${via} is a directory, not a file`);
        if (!st.isFile()) throw new TaskError(`the image's ${guestPath}${via} is not a regular file`);
        return { data: readFileSync(fd), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      } finally {
        closeSync(fd);
      }
    });
  }

  /** A missing file (or a link to one) is a one-line error naming the guest path. */
  read(guestPath: string): string {
    return this.readRegular(guestPath).data.toString('utf8');
  }

  readBytes(guestPath: string): Buffer {
    return this.readRegular(guestPath).data;
  }

  readOr(guestPath: string, fallback: string): string {
    return this.exists(guestPath) ? this.read(guestPath) : fallback;
  }

  /** Content, mode and owner of a regular file (links followed inside the guest), or undefined. */
  readFileData(guestPath: string): GuestFileData | undefined {
    try {
      return this.readRegular(guestPath);
    } catch (e) {
      if (e instanceof TaskError) return undefined;
      throw e;
    }
  }

  /**
   * Replaces a file atomically (temporary file + rename in the same directory), keeping
   * the old file's mode and owner unless given. A symlink at the final path is replaced,
   * not followed; missing directories on the way are created (0755).
   */
  write(
    guestPath: string,
    content: string | Buffer,
    options: { mode?: number; uid?: number; gid?: number } = {},
  ): void {
    this.with(guestPath, { followFinal: false, create: PARENTS }, (l) => {
      if (l.name === undefined) throw new TaskError(`cannot write the image's ${guestPath}: it is a directory`);
      const old = lstatAt(l.atPath);
      if (old?.isDirectory()) throw new TaskError(`cannot write the image's ${guestPath}: it is a directory`);
      const keep = old?.isFile() ? old : undefined;
      const mode = options.mode ?? (keep ? keep.mode & 0o7777 : 0o644);
      const uid = options.uid ?? keep?.uid ?? 0;
      const gid = options.gid ?? keep?.gid ?? 0;
      const { fd, name } = createTemporary(l.dir);
      const tmp = at(l.dir, name);
      try {
        try {
          const bytes = typeof content === 'string' ? Buffer.from(content) : content;
          for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
          fchownSync(fd, uid, gid);
          fchmodSync(fd, mode);
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, l.atPath);
      } catch (e) {
        try {
          unlinkSync(tmp);
        } catch {
          // already renamed or never there
        }
        throw e instanceof TaskError
          ? e
          : new TaskError(
              `cannot write the image's ${guestPath}: ${(e as Error).message.replace(/ '\/proc\/self\/fd\/.*$/, '')}`,
            );
      }
    });
  }

  /** Removes the entry itself (a link, never its target); a missing one is fine. */
  remove(guestPath: string): void {
    this.with(guestPath, { followFinal: false }, (l) => {
      if (l.name === undefined || !l.parentExists) return;
      const st = lstatAt(l.atPath);
      if (st === undefined) return;
      if (st.isDirectory()) throw new TaskError(`cannot remove the image's ${guestPath}: it is a directory`);
      unlinkSync(l.atPath);
    });
  }

  /**
   * Makes a directory and its missing parents with this mode and owner (set on their
   * descriptors); existing ones are kept as they are. Returns its host path.
   */
  mkdirp(guestPath: string, mode: number, uid: number, gid: number): string {
    const create = { mode, uid, gid };
    return this.with(guestPath, { create }, (l) => {
      if (l.name !== undefined) {
        const st = lstatAt(l.atPath);
        if (st === undefined) {
          mkdirSync(l.atPath, { mode: 0o700 });
          const fd = openDirectoryAt(l.atPath);
          try {
            fchownSync(fd, uid, gid);
            fchmodSync(fd, mode);
          } finally {
            closeSync(fd);
          }
        } else if (!st.isDirectory()) {
          throw new TaskError(
            `cannot create the directory ${guestPath} in the image: ${l.guestPath} is not a directory`,
          );
        }
      }
      return l.hostPath;
    });
  }
}

/** A new file in the open directory under an unpredictable name, created exclusively (never through a link). */
function createTemporary(dir: number): { fd: number; name: string } {
  for (let attempt = 0; ; attempt++) {
    const name = `.snf-image-tmp-${randomBytes(8).toString('hex')}`;
    try {
      return { fd: openSync(at(dir, name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600), name };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 8) throw e;
    }
  }
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** A uid/gid field chown can take (decimal, below (uid_t)-1); lines with another are skipped, as glibc does. */
const isId = (field: string | undefined) =>
  field !== undefined && /^\d{1,10}$/.test(field) && Number(field) < 0xffffffff;

export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 7 && f[0] && isId(f[2]) && isId(f[3]))
    .map((f) => ({ name: f[0] as string, uid: Number(f[2]), gid: Number(f[3]), home: f[5] as string }));
}

export function parseGroup(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] && isId(f[2])) out.set(f[0], Number(f[2]));
  }
  return out;
}
