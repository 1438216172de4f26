/**
 * Paths inside the mounted guest, resolved as the guest would see them (symlinks followed
 * relative to the guest root, ".." clamped at it), so that a symlink planted in the image
 * can never send a read or write outside the guest's filesystem.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { TaskError } from './exec.ts';

const MAX_LINKS = 40;

/**
 * Host path of `guestPath` under `root`. All symlinks are followed inside the guest, the
 * final one too unless `followFinal` is false. Missing components are allowed (for
 * creation); they are appended as they are.
 */
export function resolveInGuest(root: string, guestPath: string, followFinal = true): string {
  if (!guestPath.startsWith('/')) throw new TaskError(`guest path ${guestPath} is not absolute`);
  const pending = guestPath.split('/').filter((c) => c !== '' && c !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const component = pending.shift() as string;
    if (component === '..') {
      resolved.pop();
      continue;
    }
    const candidate = posix.join(root, ...resolved, component);
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      isLink = false;
    }
    const isFinal = pending.length === 0;
    if (isLink && (followFinal || !isFinal)) {
      if (++links > MAX_LINKS) throw new TaskError(`too many symbolic links resolving ${guestPath} in the image`);
      const target = readlinkSync(candidate);
      const parts = target.split('/').filter((c) => c !== '' && c !== '.');
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...parts);
      continue;
    }
    resolved.push(component);
  }
  return posix.join(root, ...resolved);
}
