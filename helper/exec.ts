/** Running tools inside the helper: no shell, errors as one line with the tool's last words. */
import { execa, type Options } from 'execa';

export class TaskError extends Error {}

export interface RunOptions {
  input?: string;
  cwd?: string;
  env?: Record<string, string>;
  allowFailure?: boolean;
  /**
   * Run under timeout(1), which signals the program's whole process group (children
   * included): TERM after this many seconds, KILL 2 s later. A timeout is always an error.
   */
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
  };
  const limit = options.timeoutSeconds;
  const r = limit ? await execa('timeout', ['-k', '2', String(limit), command, ...args], execOptions) : await execa(command, args, execOptions);
  const label = options.label ?? `${command} ${args.slice(0, 3).join(' ')}`;
  // timeout(1): 124 after TERM, 128+9 when KILL was needed.
  if (limit && (r.exitCode === 124 || r.exitCode === 137)) throw new TaskError(`${label} did not finish within ${limit} s and was killed`);
  const result = { code: r.exitCode ?? (r.failed ? 1 : 0), stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if (result.code !== 0 && !options.allowFailure) {
    const last = (result.stderr.trim() || result.stdout.trim() || (r.failed && 'originalMessage' in r ? String(r.originalMessage) : '')).split('\n').pop() ?? '';
    throw new TaskError(`${label} failed (exit ${result.code})${last ? `: ${last}` : ''}`);
  }
  return result;
}
