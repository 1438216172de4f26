/**
 * The machine-wide lock that tests touching the installed provider (the Debian package
 * test, the real-Ganeti suite) hold, so that they never run over each other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';

export const PACKAGE_LOCK = '/run/lock/snf-image-package.lock';

/** Exclusive flock on PACKAGE_LOCK, held by a child process until the returned release(). */
export async function acquirePackageLock(): Promise<() => void> {
  mkdirSync('/run/lock', { recursive: true });
  const holder: ChildProcess = spawn('flock', ['-x', PACKAGE_LOCK, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolveLock, reject) => {
    holder.stdout?.once('data', () => resolveLock());
    holder.once('exit', (code) => reject(new Error(`flock ${PACKAGE_LOCK} exited ${code}`)));
  });
  return () => holder.stdin?.end();
}

/**
 * The start of a bash script, run under `unshare --mount --propagation private` with the
 * real /var/cache's bind target as $1, that puts a throw-away tmpfs on /var/cache with every
 * cache bound back except snf-image's own: a package purge's `rm -rf` of those then cannot
 * delete the helper build cache that other tests share. `tag` names the tmpfs.
 */
export function privateVarCacheScript(tag: string): string {
  return String.raw`
set -eu
real=$1
mount --bind /var/cache "$real"
mount -t tmpfs ${tag} /var/cache
for d in "$real"/*; do
	n=$(basename "$d")
	case "$n" in snf-image | snf-image-build) continue ;; esac
	[ -d "$d" ] || continue
	mkdir "/var/cache/$n"
	mount --bind "$d" "/var/cache/$n"
done`;
}
