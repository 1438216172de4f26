/**
 * Runs the helper VM: QEMU with the command line of qemu-command.ts, serial port 1 (console)
 * relayed to the log as "HELPER: ...", port 3 (monitor protocol) relayed as image-helper
 * messages in order, port 2 read for SUCCESS or "ERROR: ..." (its first line, at most
 * MAX_RESULT_BYTES). Everything relayed is made printable and bounded (serial-tail.ts). Soft
 * timeout (SIGTERM), then hard timeout (SIGKILL); a helper that timed out has failed, whatever
 * it wrote. A timeout(1) wrapper bounds QEMU's life even if this process is killed, and no
 * exit path of this process leaves QEMU running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { log } from '../log/logger.ts';
import { printable } from '../log/printable.ts';
import type { MonitorSink } from '../monitor/progress-monitor.ts';
import { scrub } from '../util/secret.ts';
import { parseEvent, toMonitorMessage } from './monitor-protocol.ts';
import { qemuArguments, type QemuCommandInput } from './qemu-command.ts';
import { readPortHead, SerialTail } from './serial-tail.ts';

export interface LaunchOptions {
  qemu: string;
  command: Omit<QemuCommandInput, 'serial'>;
  workDir: string;
  softTimeoutSeconds: number;
  hardTimeoutSeconds: number;
  monitor: MonitorSink;
  /** Called with QEMU's pid once it runs (tests check its arguments and user). */
  onStart?: (pid: number, args: readonly string[]) => void;
}

export type HelperOutcome =
  | { ok: true; seconds: number; tasks: TaskTiming[] }
  | { ok: false; seconds: number; reason: 'timeout' | 'error' | 'crashed'; message: string; tasks: TaskTiming[] };

export interface TaskTiming {
  task: string;
  seconds: number;
}

/** The last part of QEMU's own stderr kept for the error message. */
const QEMU_STDERR_KEEP = 64 * 1024;

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** No QEMU outlives this process, whatever way it ends. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const child of running) killGroup(child, 'SIGKILL');
  };
  process.on('exit', killAll);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(128 + ({ SIGTERM: 15, SIGINT: 2, SIGHUP: 1 } as const)[signal]);
    });
  }
}

/** QEMU runs in its own process group (with its timeout(1) wrapper): signal all of it. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

export async function launchHelper(options: LaunchOptions): Promise<HelperOutcome> {
  installExitHook();
  const serial = { console: join(options.workDir, 'console.log'), result: join(options.workDir, 'result'), monitor: join(options.workDir, 'monitor'), debug: options.command.debug ? 'pty' : undefined };
  const qemuArgs = qemuArguments({ ...options.command, serial: { ...serial, debug: serial.debug } });
  // timeout(1) is only the backstop for this process being killed outright.
  const backstop = Math.ceil(options.softTimeoutSeconds + options.hardTimeoutSeconds + 10);
  const started = Date.now();
  const tasks: TaskTiming[] = [];
  const taskStarts = new Map<string, number>();
  const errors: string[] = [];

  const consoleTail = new SerialTail(serial.console, (line) => {
    if (line.trim() !== '') log().info(scrub(`HELPER: ${printable(line)}`));
  });
  const monitorTail = new SerialTail(serial.monitor, (line) => {
    const event = parseEvent(line);
    if (!event) return;
    if (event.kind === 'task-start') taskStarts.set(event.task, Date.now());
    if (event.kind === 'task-end') tasks.push({ task: event.task, seconds: (Date.now() - (taskStarts.get(event.task) ?? Date.now())) / 1000 });
    if (event.kind === 'error') errors.push(event.message);
    if (event.kind === 'warning') log().warn(`helper: ${event.message}`);
    options.monitor.send(toMonitorMessage(event));
  });

  const child = spawn('timeout', ['-k', '5', String(backstop), options.qemu, ...qemuArgs], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' }, detached: true });
  running.add(child);
  let qemuStderr = '';
  child.stderr?.on('data', (d: Buffer) => (qemuStderr = (qemuStderr + d.toString()).slice(-QEMU_STDERR_KEEP)));
  if (child.pid !== undefined) options.onStart?.(child.pid, qemuArgs);
  consoleTail.start();
  monitorTail.start();

  let timedOut = false;
  const soft = setTimeout(() => {
    timedOut = true;
    log().error(`helper VM did not finish within HELPER_SOFT_TIMEOUT (${options.softTimeoutSeconds} s): terminating it`);
    killGroup(child, 'SIGTERM');
  }, options.softTimeoutSeconds * 1000);
  const hard = setTimeout(() => {
    log().error('helper VM still running after HELPER_HARD_TIMEOUT: killing it');
    killGroup(child, 'SIGKILL');
  }, (options.softTimeoutSeconds + options.hardTimeoutSeconds) * 1000);

  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 : null)));
    child.once('error', () => resolve(null));
  });
  clearTimeout(soft);
  clearTimeout(hard);
  killGroup(child, 'SIGKILL');
  running.delete(child);
  await consoleTail.stop();
  await monitorTail.stop();
  const seconds = (Date.now() - started) / 1000;

  if (timedOut || code === 124 || code === 137) return { ok: false, seconds, reason: 'timeout', message: 'Image customization failed. Did not finish on time.', tasks };
  const result = printable(await readPortHead(serial.result)).trim();
  if (result === 'SUCCESS') return { ok: true, seconds, tasks };
  if (result.startsWith('ERROR:')) return { ok: false, seconds, reason: 'error', message: scrub(result.slice(6).trim() || errors.at(-1) || 'Image customization failed.'), tasks };
  const qemuError = printable(qemuStderr.trim().split('\n').filter(Boolean).pop() ?? '');
  if (qemuError) log().error(scrub(`qemu: ${qemuError}`));
  return { ok: false, seconds, reason: 'crashed', message: errors.at(-1) ?? `Customization VM died unexpectedly (return code ${code ?? 'unknown'})${qemuError ? `: ${scrub(qemuError)}` : ''}`, tasks };
}
