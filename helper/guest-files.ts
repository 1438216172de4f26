/** Reading and writing files inside the mounted guest, never following a link out of it. */
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, statSync, lstatSync, unlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { TaskError } from './exec.ts';
import { resolveInGuest } from './guest-path.ts';

export class GuestFs {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  path(guestPath: string, followFinal = true): string {
    return resolveInGuest(this.root, guestPath, followFinal);
  }

  exists(guestPath: string): boolean {
    return existsSync(this.path(guestPath));
  }

  /** A missing file (or a link to one) is a one-line error naming the guest path. */
  read(guestPath: string): string {
    const path = this.path(guestPath);
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const target = path.slice(this.root.length) || '/';
      const via = target !== posix.normalize(guestPath) ? ` (a link to ${target} inside the image)` : '';
      if (code === 'ENOENT') throw new TaskError(`the image's ${guestPath}${via} does not exist`);
      if (code === 'EISDIR') throw new TaskError(`the image's ${guestPath}${via} is a directory, not a file`);
      throw e;
    }
  }

  readBytes(guestPath: string): Buffer {
    return readFileSync(this.path(guestPath));
  }

  readOr(guestPath: string, fallback: string): string {
    return this.exists(guestPath) ? this.read(guestPath) : fallback;
  }

  /**
   * Replaces a file atomically (temporary file + rename in the same directory), keeping
   * the old file's mode and owner unless given. A symlink at the final path is replaced,
   * not followed.
   */
  write(guestPath: string, content: string | Buffer, options: { mode?: number; uid?: number; gid?: number } = {}): void {
    const dir = this.path(posix.dirname(guestPath));
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const final = posix.join(dir, posix.basename(guestPath));
    let mode = options.mode;
    let uid = options.uid;
    let gid = options.gid;
    try {
      const st = lstatSync(final);
      if (!st.isSymbolicLink()) {
        mode ??= st.mode & 0o7777;
        uid ??= st.uid;
        gid ??= st.gid;
      }
    } catch {
      // new file
    }
    const tmp = `${final}.snf-image-tmp`;
    writeFileSync(tmp, content, { mode: mode ?? 0o644, flag: 'w' });
    chmodSync(tmp, mode ?? 0o644);
    chownSync(tmp, uid ?? 0, gid ?? 0);
    renameSync(tmp, final);
  }

  remove(guestPath: string): void {
    const p = this.path(guestPath, false);
    if (existsSync(p) || isLink(p)) unlinkSync(p);
  }

  mkdirp(guestPath: string, mode: number, uid: number, gid: number): string {
    const parts = guestPath.split('/').filter(Boolean);
    let current = '';
    for (const part of parts) {
      current += `/${part}`;
      const p = this.path(current);
      if (!existsSync(p)) {
        mkdirSync(p, { mode });
        chownSync(p, uid, gid);
        chmodSync(p, mode);
      }
    }
    return this.path(guestPath);
  }

  isDirectory(guestPath: string): boolean {
    try {
      return statSync(this.path(guestPath)).isDirectory();
    } catch {
      return false;
    }
  }
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** A uid/gid field chown can take (decimal, below (uid_t)-1); lines with another are skipped, as glibc does. */
const isId = (field: string | undefined) => field !== undefined && /^\d{1,10}$/.test(field) && Number(field) < 0xffffffff;

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
