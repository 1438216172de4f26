/**
 * Delivers progress messages as JSON lines: to the PROGRESS_MONITOR program's stdin
 * (argv[1] = instance name) when one is configured, else to the log prefixed "[MONITOR]".
 * A monitor that dies is logged once and the deployment goes on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { log } from '../log/logger.ts';
import { scrub } from '../util/secret.ts';
import type { MonitorMessage } from './messages.ts';

export interface MonitorSink {
  send(message: MonitorMessage): void;
  close(): Promise<void>;
}

/** Serializes a message; secrets cannot survive this. */
export function serialize(message: MonitorMessage): string {
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

export class ProgramMonitor implements MonitorSink {
  readonly #child: ChildProcess;
  #alive = true;
  readonly #exited: Promise<void>;

  constructor(program: string, instanceName: string) {
    const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
    this.#child = spawn(program, [instanceName], { stdio: ['pipe', 'inherit', 'inherit'], env });
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
    log().warn(`${why}; deployment continues without progress reports`);
  }

  send(message: MonitorMessage): void {
    if (!this.#alive || !this.#child.stdin?.writable) return;
    this.#child.stdin.write(`${serialize(message)}\n`);
  }

  async close(): Promise<void> {
    if (this.#child.stdin && !this.#child.stdin.destroyed) this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGTERM'), 5000);
    await this.#exited;
    clearTimeout(timer);
  }
}

export function createMonitor(program: string, instanceName: string): MonitorSink {
  return program === '' ? new LogMonitor() : new ProgramMonitor(program, instanceName);
}
