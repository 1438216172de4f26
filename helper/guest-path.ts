/**
 * Paths inside the mounted guest, resolved as the guest would see them (symlinks followed
 * relative to the guest root, ".." clamped at it), so that a symlink planted in the image
 * can never send a read or write outside the guest's filesystem.
 *
 * The walk holds an open descriptor of every directory on the way and looks each component
 * up relative to its parent's descriptor (`/proc/self/fd/<dir>/<name>`, the openat(2) of
 * the sync fs API; the kernel resolves the /proc/self/fd link to the directory itself), so
 * a directory is never reached again through a path the image could have changed. What
 * the walk returns is the open directory holding the final component: files are created,
 * renamed and removed relative to it (guest-files.ts).
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  type Stats,
} from 'node:fs';
import { posix } from 'node:path';
import { TaskError } from './exec.ts';

const MAX_LINKS = 40;
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = constants;

/** `name` in the open directory `dir`, as a path the kernel looks up relative to that directory. */
export function at(dir: number, name: string): string {
  return `/proc/self/fd/${dir}/${name}`;
}

/** lstat that says undefined for a missing entry. */
export function lstatAt(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** Opens an existing directory without following a link at its name. */
export function openDirectoryAt(path: string): number {
  return openSync(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

interface Frame {
  /** Open descriptor of the directory, or -1 for a directory that does not exist. */
  fd: number;
  name: string;
}

/** Mode and owner of the directories a walk creates. */
interface NewDirectories {
  mode: number;
  uid: number;
  gid: number;
}

export interface WalkOptions {
  /** Follow a link at the final component too (default); false: the link itself. */
  followFinal?: boolean;
  /** Create missing directories on the way (not the final component). */
  create?: NewDirectories;
}

/**
 * Where a guest path leads: the directory holding its final component (open while the
 * location is), and that component's name (undefined when the path is a directory itself,
 * e.g. the guest root).
 */
export class GuestLocation {
  readonly root: string;
  readonly name: string | undefined;
  private readonly frames: Frame[];

  constructor(root: string, frames: Frame[], name: string | undefined) {
    this.root = root;
    this.frames = frames;
    this.name = name;
  }

  /** Whether the directory holding the final component exists. */
  get parentExists(): boolean {
    return (this.frames[this.frames.length - 1] as Frame).fd >= 0;
  }

  /** Descriptor of the directory holding the final component. */
  get dir(): number {
    const fd = (this.frames[this.frames.length - 1] as Frame).fd;
    if (fd < 0) throw new TaskError(`the image's ${posix.dirname(this.guestPath)} does not exist`);
    return fd;
  }

  /** The final component relative to its open directory ("." for the directory itself). */
  get atPath(): string {
    return at(this.dir, this.name ?? '.');
  }

  /** The path inside the guest the walk arrived at (links resolved). */
  get guestPath(): string {
    return posix.join('/', ...this.frames.slice(1).map((f) => f.name), this.name ?? '');
  }

  /** Host path of the location (for reading and for programs; no link in it when it was made). */
  get hostPath(): string {
    const guestPath = this.guestPath;
    return guestPath === '/' ? this.root : posix.join(this.root, guestPath);
  }

  close(): void {
    for (const frame of this.frames) if (frame.fd >= 0) closeSync(frame.fd);
    this.frames.length = 0;
  }
}

function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

function createDirectory(path: string, guestPath: string, create: NewDirectories): number {
  mkdirSync(path, { mode: 0o700 });
  const fd = openDirectoryAt(path);
  try {
    // On the descriptor: owner first (a change of owner clears set-ID bits), then the exact mode.
    fchownSync(fd, create.uid, create.gid);
    fchmodSync(fd, create.mode);
  } catch (e) {
    closeSync(fd);
    throw new TaskError(`cannot create the directory ${guestPath} in the image: ${(e as Error).message}`);
  }
  return fd;
}

/**
 * Walks `guestPath` from the guest root. Every link is followed inside the guest (the
 * final one unless followFinal is false); ".." stops at the root. Missing directories are
 * created when asked to, else the walk goes on past them without descriptors. The caller
 * closes the location.
 */
export function walkGuest(root: string, guestPath: string, options: WalkOptions = {}): GuestLocation {
  if (!guestPath.startsWith('/')) throw new TaskError(`guest path ${guestPath} is not absolute`);
  const followFinal = options.followFinal ?? true;
  const pending = components(guestPath);
  const frames: Frame[] = [{ fd: openDirectoryAt(root), name: '' }];
  let links = 0;
  try {
    while (pending.length > 0) {
      const component = pending.shift() as string;
      if (component === '..') {
        if (frames.length > 1) {
          const gone = frames.pop() as Frame;
          if (gone.fd >= 0) closeSync(gone.fd);
        }
        continue;
      }
      const parent = frames[frames.length - 1] as Frame;
      const path = parent.fd >= 0 ? at(parent.fd, component) : undefined;
      const st = path !== undefined ? lstatAt(path) : undefined;
      const isFinal = pending.length === 0;
      if (st?.isSymbolicLink() && (followFinal || !isFinal)) {
        if (++links > MAX_LINKS) throw new TaskError(`too many symbolic links resolving ${guestPath} in the image`);
        const target = readlinkSync(path as string);
        if (target.startsWith('/')) {
          while (frames.length > 1) {
            const gone = frames.pop() as Frame;
            if (gone.fd >= 0) closeSync(gone.fd);
          }
        }
        pending.unshift(...components(target));
        continue;
      }
      if (isFinal) return new GuestLocation(root, frames, component);
      if (st?.isDirectory()) {
        frames.push({ fd: openDirectoryAt(path as string), name: component });
      } else if (options.create && path !== undefined) {
        const here = posix.join('/', ...frames.slice(1).map((f) => f.name), component);
        if (st !== undefined)
          throw new TaskError(`cannot create ${guestPath} in the image: ${here} is not a directory`);
        frames.push({ fd: createDirectory(path, here, options.create), name: component });
      } else {
        frames.push({ fd: -1, name: component });
      }
    }
    return new GuestLocation(root, frames, undefined);
  } catch (e) {
    for (const frame of frames) if (frame.fd >= 0) closeSync(frame.fd);
    throw e;
  }
}

/**
 * Host path of `guestPath` under `root`. All symlinks are followed inside the guest, the
 * final one too unless `followFinal` is false. Missing components are allowed (for
 * creation); they are appended as they are.
 */
export function resolveInGuest(root: string, guestPath: string, followFinal = true): string {
  const location = walkGuest(root, guestPath, { followFinal });
  try {
    return location.hostPath;
  } finally {
    location.close();
  }
}
