/**
 * Opens a file that must lie inside a directory (IMAGE_DIR, ANSWER_FILE_DIR), once, as root
 * would open a hostile name: the path must be inside the directory as written and once
 * every link is resolved; the resolved path is opened with O_NOFOLLOW (and O_NONBLOCK, so a
 * FIFO cannot hang the open); the kernel's own name for the opened file (/proc/self/fd)
 * must still be inside the directory, which catches a path component swapped for a link
 * between the check and the open. Callers keep using the descriptor, never the name.
 */
import { constants } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { resolve, sep } from 'node:path';

export type ConfinementProblem =
  /** The path as written is not inside the directory. */
  | 'outside'
  /** A symbolic link on the path leads out of the directory. */
  | 'link-out'
  /** No such file (or the directory itself is missing). */
  | 'missing'
  | 'not-file';

export class ConfinementError extends Error {
  readonly problem: ConfinementProblem;
  readonly code: string | undefined;

  constructor(problem: ConfinementProblem, message: string, code?: string) {
    super(message);
    this.problem = problem;
    this.code = code;
  }
}

export interface ConfinedFile {
  handle: FileHandle;
  /** The file's resolved path (for logs). */
  realPath: string;
  size: number;
  /**
   * A name of exactly this open file for root processes this one starts (qemu-img, the
   * readers of this module): /proc/<pid>/fd/<n> reopens the inode, not the path.
   */
  procPath: string;
}

const inside = (path: string, root: string): boolean => path.startsWith(root.endsWith(sep) ? root : root + sep);

function errnoOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
}

/** `path` must be absolute; `root` is the directory it must stay in. */
export async function openConfined(path: string, root: string): Promise<ConfinedFile> {
  const lexicalRoot = resolve(root);
  const lexical = resolve(path);
  if (!inside(lexical, lexicalRoot)) throw new ConfinementError('outside', `is outside ${lexicalRoot}`);
  let realRoot: string;
  let real: string;
  try {
    realRoot = await realpath(lexicalRoot);
    real = await realpath(lexical);
  } catch (error) {
    throw new ConfinementError('missing', errnoOf(error), errnoOf(error));
  }
  if (!inside(real, realRoot)) throw new ConfinementError('link-out', `resolves to ${real}, outside ${realRoot}`);
  let handle: FileHandle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = errnoOf(error);
    // ELOOP: the last component became a link after it was resolved.
    if (code === 'ELOOP') throw new ConfinementError('link-out', 'was replaced by a symbolic link', code);
    throw new ConfinementError('missing', code, code);
  }
  try {
    const opened = await readlink(`/proc/self/fd/${handle.fd}`);
    if (!inside(opened, realRoot)) throw new ConfinementError('link-out', `resolves to ${opened}, outside ${realRoot}`);
    const st = await handle.stat();
    if (!st.isFile()) throw new ConfinementError('not-file', 'is not a regular file');
    return { handle, realPath: opened, size: st.size, procPath: `/proc/${process.pid}/fd/${handle.fd}` };
  } catch (error) {
    await handle.close();
    throw error;
  }
}
