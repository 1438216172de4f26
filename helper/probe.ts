/**
 * Looks at the image's filesystems before anything is known about them (detection of the
 * root): each is mounted read-only, nosuid, nodev and noexec (ext2/3/4 without replaying
 * its journal), inspected, and unmounted; a Linux root is a filesystem with /etc/fstab (as
 * upstream's check_if_root in snf-image-helper/common.sh.in: no OS release file needed, so
 * older images without one are found), looked at without following any link of the image.
 */
import { mkdirSync } from 'node:fs';
import { run } from './exec.ts';
import { GuestFs } from './guest-files.ts';

/** Mount options of a probe of filesystem type `fs`. */
function probeMountOptions(fs: string): string {
  return ['ro', 'nosuid', 'nodev', 'noexec', ...(fs.startsWith('ext') ? ['noload'] : [])].join(',');
}

/** Mounts `node` for a look (undefined when it does not mount), runs `inspect`, unmounts. */
export async function withProbeMount<T>(
  node: string,
  fs: string,
  where: string,
  inspect: () => T | Promise<T>,
): Promise<T | undefined> {
  mkdirSync(where, { recursive: true });
  const mounted = await run('mount', ['-o', probeMountOptions(fs), node, where], { allowFailure: true });
  if (mounted.code !== 0) return undefined;
  try {
    return await inspect();
  } finally {
    await run('umount', [where], { allowFailure: true });
  }
}

/** Whether the filesystem mounted at `where` is a Linux root: it has /etc/fstab (upstream's rule). */
export function holdsLinuxRoot(where: string): boolean {
  return new GuestFs(where).present('/etc/fstab');
}
