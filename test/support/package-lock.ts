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
  const holder: ChildProcess = spawn('flock', ['-x', PACKAGE_LOCK, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolveLock, reject) => {
    holder.stdout?.once('data', () => resolveLock());
    holder.once('exit', (code) => reject(new Error(`flock ${PACKAGE_LOCK} exited ${code}`)));
  });
  return () => holder.stdin?.end();
}
