/**
 * Runs a program of the untrusted image chrooted into the mounted guest, inside the helper
 * VM only, in the sandbox (programs/sandbox.ts): a private /dev holding just null, zero,
 * full, random and urandom (no disk, serial port or floppy), its own PID namespace, uid 0
 * with the capabilities to edit guest files only, a minimal environment, killed after a
 * time limit.
 */
import type { RunResult } from '../exec.ts';
import { GuestFs } from '../guest-files.ts';
import { runSandboxed } from './sandbox.ts';

/** Seconds an image's program may run before it is killed. */
export const GUEST_PROGRAM_TIMEOUT_S = 60;

export interface GuestProgramOptions {
  env?: Record<string, string>;
  timeoutSeconds?: number;
}

/** The exit code is the caller's to judge (allowFailure); a timeout is an error. */
export async function runInGuest(
  target: string,
  guestPath: string,
  args: readonly string[],
  options: GuestProgramOptions = {},
): Promise<RunResult> {
  const chrootDev = new GuestFs(target).mkdirp('/dev', 0o755, 0, 0);
  return runSandboxed(guestPath, args, {
    target,
    chrootDev,
    timeoutSeconds: options.timeoutSeconds ?? GUEST_PROGRAM_TIMEOUT_S,
    label: `the image's ${guestPath} ${args.join(' ')}`.trim(),
    env: {
      HOME: '/root',
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      ...(options.env ?? {}),
    },
  });
}
