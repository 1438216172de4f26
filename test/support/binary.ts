/**
 * Runs the built single executable the way Ganeti does: through a link named after the
 * OS script, with exactly the given environment (env -i), cwd = the OS directory.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const BINARY = resolve('dist/snf-image');

export function binaryMissingReason(): string | false {
  return existsSync(BINARY) ? false : 'dist/snf-image is not built (run npm run build)';
}

export function notRootReason(): string | false {
  return process.getuid?.() === 0 ? false : 'needs root (loop devices)';
}

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  /** What the script wrote to EXP_SIZE_FD (fd 11), when requested. */
  sizeFdText: string;
}

export interface RunOptions {
  env: Record<string, string>;
  args?: string[];
  stdinFile?: string;
  stdoutFile?: string;
  withSizeFd?: boolean;
  cwd?: string;
  onSpawn?: (pid: number) => void;
}

let linkDir: string | undefined;

/** A directory with links create/import/export/rename/verify -> the binary. */
export function scriptLinks(): string {
  if (linkDir) return linkDir;
  linkDir = mkdtempSync(join(tmpdir(), 'snf-links-'));
  for (const name of ['create', 'import', 'export', 'rename', 'verify']) symlinkSync(BINARY, join(linkDir, name));
  return linkDir;
}

export async function runScript(script: string, options: RunOptions): Promise<RunResult> {
  const { open } = await import('node:fs/promises');
  const stdin = options.stdinFile ? await open(options.stdinFile, 'r') : undefined;
  const stdoutFile = options.stdoutFile ? await open(options.stdoutFile, 'w') : undefined;
  const stdio: Array<'pipe' | 'ignore' | number> = [
    stdin ? stdin.fd : 'pipe',
    stdoutFile ? stdoutFile.fd : 'pipe',
    'pipe',
  ];
  if (options.withSizeFd) {
    while (stdio.length < 11) stdio.push('ignore');
    stdio.push('pipe');
  }
  const path = script === 'snf-image' ? BINARY : join(scriptLinks(), script);
  const child = spawn(path, options.args ?? [], { env: options.env, stdio, cwd: options.cwd ?? scriptLinks() });
  if (child.pid !== undefined) options.onSpawn?.(child.pid);
  if (!stdin) child.stdin?.end();
  const out: Buffer[] = [];
  let err = '';
  let sizeFdText = '';
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const sizeStream = options.withSizeFd
    ? (child.stdio as unknown as Array<import('node:stream').Readable | null>)[11]
    : undefined;
  sizeStream?.on('data', (d: Buffer) => (sizeFdText += d.toString()));
  const code = await new Promise<number | null>((resolveExit) => child.on('close', (c) => resolveExit(c)));
  await stdin?.close();
  await stdoutFile?.close();
  return { code, stdout: Buffer.concat(out), stderr: err, sizeFdText };
}
