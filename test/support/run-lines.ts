/**
 * Runs a command without blocking the event loop and hands its output (stdout and stderr)
 * to a callback one line at a time, so that concurrent builds can be shown with a prefix.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Resolves with the exit code, or the signal's name when it was killed. */
export function runLines(
  command: string,
  args: string[],
  env: Record<string, string> | undefined,
  output: (line: string) => void,
): Promise<number | string> {
  const child = spawn(command, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const closed: Array<Promise<void>> = [];
  for (const stream of [child.stdout, child.stderr]) {
    const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    lines.on('line', output);
    closed.push(new Promise((resolve) => lines.once('close', () => resolve())));
  }
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      void Promise.all(closed).then(() => resolve(code ?? signal ?? 'unknown'));
    });
  });
}
