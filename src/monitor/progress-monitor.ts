/**
 * Delivers progress messages as JSON lines: to the PROGRESS_MONITOR program's stdin
 * (argv[1] = instance name) when one is configured, else to the log prefixed "[MONITOR]".
 * A monitor that dies is logged once and the deployment goes on. send() never waits: a
 * monitor that does not keep up gets at most MAX_QUEUED messages queued, the oldest progress
 * messages dropped first and counted. At the end the monitor gets EOF, then SIGTERM after a
 * grace period, then SIGKILL (its whole process group); a signal to snf-image ends it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { log } from '../log/logger.ts';
import { registerCleanup, type Cleanup } from '../util/cleanup.ts';
import { scrub } from '../util/secret.ts';
import type { MonitorMessage } from './messages.ts';

export interface MonitorSink {
  /** True when this sink shows the helper's warnings to the person itself (they are not logged again). */
  readonly rendersHelperWarnings?: boolean;
  send(message: MonitorMessage): void;
  close(): Promise<void>;
}

/** Serializes a message; secrets cannot survive this. */
function serialize(message: MonitorMessage): string {
  return scrub(JSON.stringify(message));
}

export class LogMonitor implements MonitorSink {
  readonly #write: (line: string) => void;

  constructor(write: (line: string) => void = (line) => void process.stderr.write(line)) {
    this.#write = write;
  }

  send(message: MonitorMessage): void {
    this.#write(`[MONITOR] ${serialize(message)}\n`);
  }

  async close(): Promise<void> {}
}

/** Messages waiting for a monitor that does not keep up. */
const MAX_QUEUED = 1000;

export interface ProgramMonitorOptions {
  /** After EOF, how long the monitor may take to exit before SIGTERM (ms). */
  graceMs?: number;
  /** After SIGTERM, how long before SIGKILL (ms). */
  killAfterMs?: number;
  maxQueued?: number;
}

interface Queued {
  line: string;
  progress: boolean;
}

function within(promise: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export class ProgramMonitor implements MonitorSink {
  readonly #program: string;
  readonly #child: ChildProcess;
  readonly #graceMs: number;
  readonly #killAfterMs: number;
  readonly #maxQueued: number;
  readonly #queue: Queued[] = [];
  readonly #exited: Promise<void>;
  readonly #cleanup: Cleanup;
  #alive = true;
  #waitingForDrain = false;
  #ending = false;
  #dropped = 0;

  constructor(program: string, instanceName: string, options: ProgramMonitorOptions = {}) {
    this.#program = program;
    this.#graceMs = options.graceMs ?? 5000;
    this.#killAfterMs = options.killAfterMs ?? 2000;
    this.#maxQueued = options.maxQueued ?? MAX_QUEUED;
    // Registered before the monitor starts: once shutdown has begun this throws and nothing starts.
    this.#cleanup = registerCleanup('progress monitor', () => this.#stop(Math.min(this.#graceMs, 500)), {
      sync: () => this.#signal('SIGKILL'),
    });
    const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
    // Its own process group: what it starts is signalled with it.
    this.#child = spawn(program, [instanceName], { stdio: ['pipe', 'inherit', 'inherit'], env, detached: true });
    this.#exited = new Promise((resolve) => {
      this.#child.once('error', (err) => {
        this.#died(`cannot run progress monitor ${program}: ${err.message}`);
        resolve();
      });
      this.#child.once('exit', (code, signal) => {
        if (this.#alive && code !== 0) this.#died(`progress monitor ${program} exited (${signal ?? `code ${code}`})`);
        this.#alive = false;
        resolve();
      });
    });
    this.#child.stdin?.on('error', (err) => this.#died(`progress monitor ${program} stopped reading (${err.message})`));
  }

  #died(why: string): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#queue.length = 0;
    log().warn(`${why}; deployment continues without progress reports`);
  }

  /** Signals the monitor's process group while its leader is not reaped (its pid cannot have been reused). */
  #signal(signal: NodeJS.Signals): void {
    if (this.#child.pid === undefined || this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    try {
      process.kill(-this.#child.pid, signal);
    } catch {
      this.#child.kill(signal);
    }
  }

  send(message: MonitorMessage): void {
    if (!this.#alive || this.#ending) return;
    this.#queue.push({ line: `${serialize(message)}\n`, progress: message.type === 'image-copy-progress' });
    if (this.#queue.length > this.#maxQueued) {
      const oldestProgress = this.#queue.findIndex((q) => q.progress);
      this.#queue.splice(oldestProgress === -1 ? 0 : oldestProgress, 1);
      this.#dropped += 1;
    }
    this.#flush();
  }

  /** Writes queued lines until the pipe is full; continues on 'drain'. */
  #flush(): void {
    const stdin = this.#child.stdin;
    if (this.#waitingForDrain || !stdin) return;
    while (this.#queue.length > 0 && this.#alive && stdin.writable) {
      const next = this.#queue.shift() as Queued;
      if (!stdin.write(next.line)) {
        this.#waitingForDrain = true;
        stdin.once('drain', () => {
          this.#waitingForDrain = false;
          this.#flush();
        });
        return;
      }
    }
    if (this.#ending && this.#queue.length === 0 && !stdin.destroyed) stdin.end();
  }

  /** EOF once the queue is written; after graceMs SIGTERM, after killAfterMs more SIGKILL. */
  async #stop(graceMs: number): Promise<void> {
    this.#ending = true;
    this.#flush();
    if (!(await within(this.#exited, graceMs))) {
      this.#signal('SIGTERM');
      if (!(await within(this.#exited, this.#killAfterMs))) {
        this.#signal('SIGKILL');
        if (!(await within(this.#exited, 5000)))
          log().error(`progress monitor ${this.#program} still running after SIGKILL`);
      }
    }
    this.#dropped += this.#queue.length;
    this.#queue.length = 0;
    if (this.#dropped > 0)
      log().warn(
        `progress monitor did not keep up: ${this.#dropped} messages dropped (the oldest progress messages first)`,
      );
  }

  async close(): Promise<void> {
    this.#cleanup.dispose();
    await this.#stop(this.#graceMs);
  }
}

export function createMonitor(program: string, instanceName: string): MonitorSink {
  return program === '' ? new LogMonitor() : new ProgramMonitor(program, instanceName);
}
