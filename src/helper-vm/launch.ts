/**
 * Runs the helper VM: QEMU with the command line of qemu-command.ts, serial port 1 (console)
 * relayed to the log as "HELPER: ...", port 3 (monitor protocol) relayed as image-helper
 * messages in order, port 2 read for SUCCESS or "ERROR: ..." (its first line, at most
 * MAX_RESULT_BYTES). Everything relayed is made printable and bounded (serial-tail.ts). Soft
 * timeout (SIGTERM), then hard timeout (SIGKILL); a helper that timed out has failed, whatever
 * it wrote. A timeout(1) wrapper bounds QEMU's life even if this process is killed outright;
 * on every other exit path (signals included, through the cleanup registry) QEMU and its
 * wrapper are killed and confirmed gone before this process ends. The config media are
 * inherited descriptors (they have no name).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { log } from '../log/logger.ts';
import { printable } from '../log/printable.ts';
import type { MonitorSink } from '../monitor/progress-monitor.ts';
import { registerCleanup } from '../util/cleanup.ts';
import { scrub } from '../util/secret.ts';
import type { ConfigMedia } from './config-media.ts';
import { parseEvent, toMonitorMessage } from './monitor-protocol.ts';
import { killGroupAndWait, signalGroup } from './process-group.ts';
import { qemuArguments, type QemuCommandInput } from './qemu-command.ts';
import { readPortHead, SerialTail } from './serial-tail.ts';

export interface LaunchOptions {
  qemu: string;
  command: Omit<QemuCommandInput, 'serial' | 'media'>;
  /** The config media (this process's read-only descriptors; QEMU inherits them). */
  media: ConfigMedia;
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

interface TaskTiming {
  task: string;
  seconds: number;
}

/** The last part of QEMU's own stderr kept for the error message. */
const QEMU_STDERR_KEEP = 64 * 1024;
/** Descriptor numbers of the config media inside QEMU (after stdin, stdout, stderr). */
const CHILD_FLOPPY_FD = 3;
const CHILD_PERSONALITY_FD = 4;

async function stopQemu(child: ChildProcess): Promise<void> {
  if (child.pid === undefined) return;
  if (!(await killGroupAndWait(child.pid)))
    log().error(`helper VM (process group ${child.pid}) still alive after SIGKILL`);
}

export async function launchHelper(options: LaunchOptions): Promise<HelperOutcome> {
  const serial = {
    console: join(options.workDir, 'console.log'),
    result: join(options.workDir, 'result'),
    monitor: join(options.workDir, 'monitor'),
    debug: options.command.debug ? 'pty' : undefined,
  };
  const personality = options.media.personalityDiskFd;
  const media = {
    floppyFd: CHILD_FLOPPY_FD,
    ...(personality !== undefined ? { personalityDiskFd: CHILD_PERSONALITY_FD } : {}),
  };
  const qemuArgs = qemuArguments({ ...options.command, media, serial: { ...serial, debug: serial.debug } });
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
    if (event.kind === 'task-end')
      tasks.push({ task: event.task, seconds: (Date.now() - (taskStarts.get(event.task) ?? Date.now())) / 1000 });
    if (event.kind === 'error') errors.push(event.message);
    if (event.kind === 'warning' && !options.monitor.rendersHelperWarnings) log().warn(`helper: ${event.message}`);
    options.monitor.send(toMonitorMessage(event));
  });

  let child: ChildProcess | undefined;
  // Registered before QEMU starts: once shutdown has begun this throws and nothing starts.
  const guard = registerCleanup('helper VM', () => (child ? stopQemu(child) : undefined), {
    sync: () => child?.pid !== undefined && signalGroup(child.pid, 'SIGKILL'),
  });
  let timedOut = false;
  let code: number | null;
  let qemuStderr = '';
  try {
    const stdio = [
      'ignore',
      'ignore',
      'pipe',
      options.media.floppyFd,
      ...(personality !== undefined ? [personality] : []),
    ] as const;
    child = spawn('timeout', ['-k', '5', String(backstop), options.qemu, ...qemuArgs], {
      stdio: [...stdio],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      detached: true,
    });
    const qemu = child;
    qemu.stderr?.on('data', (d: Buffer) => (qemuStderr = (qemuStderr + d.toString()).slice(-QEMU_STDERR_KEEP)));
    if (qemu.pid !== undefined) options.onStart?.(qemu.pid, qemuArgs);
    consoleTail.start();
    monitorTail.start();
    const soft = setTimeout(() => {
      timedOut = true;
      log().error(
        `helper VM did not finish within HELPER_SOFT_TIMEOUT (${options.softTimeoutSeconds} s): terminating it`,
      );
      if (qemu.pid !== undefined) signalGroup(qemu.pid, 'SIGTERM');
    }, options.softTimeoutSeconds * 1000);
    const hard = setTimeout(
      () => {
        log().error('helper VM still running after HELPER_HARD_TIMEOUT: killing it');
        if (qemu.pid !== undefined) signalGroup(qemu.pid, 'SIGKILL');
      },
      (options.softTimeoutSeconds + options.hardTimeoutSeconds) * 1000,
    );
    code = await new Promise<number | null>((resolve) => {
      qemu.once('exit', (c, signal) => resolve(c ?? (signal ? 128 : null)));
      qemu.once('error', () => resolve(null));
    });
    clearTimeout(soft);
    clearTimeout(hard);
  } finally {
    await guard.run();
    await consoleTail.stop();
    await monitorTail.stop();
  }
  const seconds = (Date.now() - started) / 1000;

  if (timedOut || code === 124 || code === 137)
    return {
      ok: false,
      seconds,
      reason: 'timeout',
      message: 'Image customization failed. Did not finish on time.',
      tasks,
    };
  const result = printable(await readPortHead(serial.result)).trim();
  if (result === 'SUCCESS') return { ok: true, seconds, tasks };
  if (result.startsWith('ERROR:'))
    return {
      ok: false,
      seconds,
      reason: 'error',
      message: scrub(result.slice(6).trim() || errors.at(-1) || 'Image customization failed.'),
      tasks,
    };
  const qemuError = printable(qemuStderr.trim().split('\n').filter(Boolean).pop() ?? '');
  if (qemuError) log().error(scrub(`qemu: ${qemuError}`));
  return {
    ok: false,
    seconds,
    reason: 'crashed',
    message:
      errors.at(-1) ??
      `Customization VM died unexpectedly (return code ${code ?? 'unknown'})${qemuError ? `: ${scrub(qemuError)}` : ''}`,
    tasks,
  };
}
