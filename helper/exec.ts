/**
 * Running tools inside the helper: no shell, errors as one line with the tool's last words.
 * node:child_process directly (not execa): the helper's PID 1 runs under software
 * emulation on some hosts, where execa's import and per-call work cost seconds in all.
 */
import { spawn } from 'node:child_process';
import { oneLine } from '../src/util/errors.ts';

/** A task's failure: one line (a value from the image in it may hold line breaks), as the result port carries it. */
export class TaskError extends Error {
  constructor(message: string) {
    super(oneLine(message));
  }
}

export interface RunOptions {
  /** Bytes for the program's stdin (else /dev/null). */
  input?: string | Buffer;
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

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  spawnError?: Error;
}

/** A program's output as text without its final newline (callers compare whole values). */
function withoutFinalNewline(chunks: Buffer[]): string {
  return Buffer.concat(chunks)
    .toString()
    .replace(/\r?\n$/, '');
}

function execute(command: string, args: readonly string[], options: RunOptions): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...(options.env ?? {}) },
      stdio: [options.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let spawnError: Error | undefined;
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    child.once('error', (error) => (spawnError = error));
    child.once('close', (code, signal) =>
      resolve({
        code,
        signal,
        stdout: withoutFinalNewline(out),
        stderr: withoutFinalNewline(err),
        ...(spawnError ? { spawnError } : {}),
      }),
    );
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // a program that exits without reading: its status says why
      child.stdin.end(options.input);
    }
  });
}

export async function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const limit = options.timeoutSeconds;
  const r = limit
    ? await execute('timeout', ['-k', '2', String(limit), command, ...args], options)
    : await execute(command, args, options);
  const label = options.label ?? `${command} ${args.slice(0, 3).join(' ')}`;
  // timeout(1): 124 after TERM, 128+9 when KILL was needed.
  if (limit && (r.code === 124 || r.code === 137))
    throw new TaskError(`${label} did not finish within ${limit} s and was killed`);
  const code = r.spawnError !== undefined ? 127 : (r.code ?? 128);
  const result = { code, stdout: r.stdout, stderr: r.stderr };
  if (result.code !== 0 && !options.allowFailure) {
    const why =
      r.spawnError !== undefined ? r.spawnError.message : r.code === null ? `killed by ${r.signal ?? 'a signal'}` : '';
    const last = (result.stderr.trim() || result.stdout.trim() || why).split('\n').pop() ?? '';
    throw new TaskError(`${label} failed (exit ${result.code})${last ? `: ${last}` : ''}`);
  }
  return result;
}
