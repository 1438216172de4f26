/** Running tools inside the helper: no shell, errors as one line with the tool's last words. */
import { execa, type Options } from 'execa';

export class TaskError extends Error {}

export interface RunOptions {
  input?: string;
  cwd?: string;
  env?: Record<string, string>;
  allowFailure?: boolean;
  /** Killed (SIGKILL) after this many seconds; a timeout is always an error. */
  timeoutSeconds?: number;
  /** Replaces the command in error messages (e.g. a program's name instead of chroot). */
  label?: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const execOptions: Options = {
    reject: false,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...(options.env ?? {}) },
    extendEnv: false,
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' }),
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.timeoutSeconds ? { timeout: options.timeoutSeconds * 1000, killSignal: 'SIGKILL' as const } : {}),
  };
  const r = await execa(command, args, execOptions);
  const label = options.label ?? `${command} ${args.slice(0, 3).join(' ')}`;
  if (r.timedOut) throw new TaskError(`${label} did not finish within ${options.timeoutSeconds} s and was killed`);
  const result = { code: r.exitCode ?? (r.failed ? 1 : 0), stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if (result.code !== 0 && !options.allowFailure) {
    const last = (result.stderr.trim() || result.stdout.trim() || (r.failed && 'originalMessage' in r ? String(r.originalMessage) : '')).split('\n').pop() ?? '';
    throw new TaskError(`${label} failed (exit ${result.code})${last ? `: ${last}` : ''}`);
  }
  return result;
}
