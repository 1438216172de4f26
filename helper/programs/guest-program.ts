/**
 * Runs a program of the untrusted image chrooted into the mounted guest, inside the helper
 * VM only: a private /dev holding just null, zero, full, random and urandom (no disk
 * devices), a minimal environment, killed after a time limit.
 */
import { mkdirSync } from 'node:fs';
import { posix } from 'node:path';
import { run, type RunResult } from '../exec.ts';
import { resolveInGuest } from '../guest-path.ts';

/** Seconds an image's program may run before it is killed. */
export const GUEST_PROGRAM_TIMEOUT_S = 60;

const DEVICES: ReadonlyArray<[string, number, number]> = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
];

export interface GuestProgramOptions {
  env?: Record<string, string>;
  timeoutSeconds?: number;
}

/** The exit code is the caller's to judge (allowFailure); a timeout is an error. */
export async function runInGuest(target: string, guestPath: string, args: readonly string[], options: GuestProgramOptions = {}): Promise<RunResult> {
  const dev = resolveInGuest(target, '/dev');
  mkdirSync(dev, { recursive: true, mode: 0o755 });
  await run('mount', ['-t', 'tmpfs', '-o', 'nosuid,noexec,mode=0755,size=64k', 'snf-guest-dev', dev]);
  try {
    for (const [name, major, minor] of DEVICES) await run('mknod', ['-m', '0666', posix.join(dev, name), 'c', String(major), String(minor)]);
    return await run('chroot', [target, guestPath, ...args], {
      allowFailure: true,
      cwd: target,
      timeoutSeconds: options.timeoutSeconds ?? GUEST_PROGRAM_TIMEOUT_S,
      label: `the image's ${guestPath} ${args.join(' ')}`.trim(),
      env: { HOME: '/root', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...(options.env ?? {}) },
    });
  } finally {
    await run('umount', ['-l', dev], { allowFailure: true });
  }
}
