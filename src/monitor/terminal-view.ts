/**
 * What a person at a terminal sees of a deployment (`snf-image deploy`, or `create` run by
 * hand): the progress messages of the deployment rendered once each, a progress bar while
 * the image is written, one line per helper task (name, time, done / skipped / warning /
 * failed), the host's warnings and errors, and the result with the total time. Ganeti
 * (stderr not a terminal) and --verbose keep the full log instead.
 *
 * TerminalRenderer is pure (events in, text out: unit-tested); TerminalView feeds it from
 * the monitor sink, the image writer's byte progress and the logger, and writes to stderr.
 */
import type { MonitorMessage } from './messages.ts';
import { renderBar, type ByteProgressDisplay } from './progress-bar.ts';
import type { MonitorSink } from './progress-monitor.ts';
import type { LineSink } from '../log/logger.ts';

/** Clears the line the cursor is on (the live line) before a permanent line replaces it. */
const CLEAR_LINE = '\r\x1b[K';
const NAME_WIDTH = 28;
/** The helper's warning for a task it skipped on request (helper/runner.ts). */
const SKIPPED = /^Task (\S+) skipped: (.*)$/;

type TaskStatus = 'done' | 'warning' | 'failed';

const MARK: Readonly<Record<TaskStatus | 'skipped', string>> = {
  done: '✓',
  warning: '!',
  failed: '✗',
  skipped: '–',
};

interface RunningTask {
  name: string;
  started: number;
  warnings: string[];
}

function seconds(from: number, to: number): string {
  return `${Math.max(0, to - from).toFixed(1)} s`;
}

export class TerminalRenderer {
  readonly #started: number;
  /** The text of the line being redrawn in place (the bar, the running task), if any. */
  #live: string | undefined;
  #task: RunningTask | undefined;
  #failed = false;
  #barStarted: number | undefined;

  /** @param started when the deployment started (seconds since the epoch, as message timestamps) */
  constructor(started: number) {
    this.#started = started;
  }

  /** Permanent lines, written over the live line, which is drawn again after them. */
  #lines(lines: readonly string[]): string {
    if (lines.length === 0) return '';
    const text = lines.map((l) => `${l}\n`).join('');
    return `${this.#live !== undefined ? CLEAR_LINE : ''}${text}${this.#live ?? ''}`;
  }

  #setLive(text: string | undefined): string {
    const out = `${this.#live !== undefined ? CLEAR_LINE : ''}${text ?? ''}`;
    this.#live = text;
    return out;
  }

  #endTask(at: number, failed: boolean): string {
    const task = this.#task;
    if (!task) return '';
    this.#task = undefined;
    const status: TaskStatus = failed ? 'failed' : task.warnings.length > 0 ? 'warning' : 'done';
    const line = `  ${MARK[status]} ${task.name.padEnd(NAME_WIDTH)} ${seconds(task.started, at).padStart(7)}  ${status}`;
    const out = this.#setLive(undefined);
    return out + [line, ...task.warnings.map((w) => `      ${w}`)].map((l) => `${l}\n`).join('');
  }

  /** A progress message of the deployment (the same ones a PROGRESS_MONITOR receives). */
  message(m: MonitorMessage): string {
    switch (m.type) {
      case 'image-info':
        return this.#lines(m.messages);
      case 'image-error':
        // Its text is the command's error line, printed once by the command itself.
        this.#failed = true;
        return this.#endTask(m.timestamp, true);
      case 'image-copy-progress':
        // The writer's byte progress (bytes()) draws the bar; these are for monitors.
        return '';
      case 'image-helper':
        switch (m.subtype) {
          case 'task-start': {
            const out = this.#endTask(m.timestamp, false);
            this.#task = { name: m.task, started: m.timestamp, warnings: [] };
            return out + this.#setLive(`  ▸ ${m.task.padEnd(NAME_WIDTH)}   running`);
          }
          case 'task-end':
            return this.#task?.name === m.task ? this.#endTask(m.timestamp, false) : '';
          case 'warning': {
            const text = (m.messages ?? []).join(' ');
            const skipped = SKIPPED.exec(text);
            if (skipped && !this.#task)
              return this.#lines([
                `  ${MARK.skipped} ${(skipped[1] ?? '').padEnd(NAME_WIDTH)} ${''.padStart(7)}  skipped: ${skipped[2] ?? ''}`,
              ]);
            if (this.#task) {
              this.#task.warnings.push(`warning: ${text}`);
              return '';
            }
            return this.#lines([`  ${MARK.warning} warning: ${text}`]);
          }
          case 'error':
            // The running task has failed; the reason reaches the person once, as the command's error line.
            return this.#endTask(m.timestamp, true);
        }
    }
    return '';
  }

  /** The image writer's position (bytes written of total). */
  bytes(position: number, total: number | undefined, at: number): string {
    this.#barStarted ??= at;
    return this.#setLive(renderBar(position, total, at - this.#barStarted));
  }

  /** The image write has ended: the bar stays as it last was. */
  bytesDone(): string {
    if (this.#live === undefined) return '';
    this.#live = undefined;
    return '\n';
  }

  /** A line of the host's log (warnings and errors). */
  logLine(line: string): string {
    return this.#lines([line.replace(/\n$/, '')]);
  }

  /** The result and the total time. */
  finish(at: number): string {
    const out = this.#task ? this.#endTask(at, true) : this.#setLive(undefined);
    const total = seconds(this.#started, at);
    return `${out}${this.#failed ? `${MARK.failed} failed after ${total}` : `${MARK.done} done in ${total}`}\n`;
  }
}

/** Minimum time between two redraws of the bar. */
const REDRAW_MS = 200;

export class TerminalView implements MonitorSink, ByteProgressDisplay, LineSink {
  /** The helper's warnings are shown by the view, under their task: not logged again. */
  readonly rendersHelperWarnings = true;
  readonly #renderer: TerminalRenderer;
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  #lastDraw = 0;
  #closed = false;

  constructor(write: (text: string) => void, now: () => number = () => Date.now() / 1000) {
    this.#write = write;
    this.#now = now;
    this.#renderer = new TerminalRenderer(now());
  }

  #out(text: string): void {
    if (text !== '') this.#write(text);
  }

  send(message: MonitorMessage): void {
    this.#out(this.#renderer.message(message));
  }

  update(position: number, total: number | undefined, force = false): void {
    const now = this.#now();
    if (!force && (now - this.#lastDraw) * 1000 < REDRAW_MS) return;
    this.#lastDraw = now;
    this.#out(this.#renderer.bytes(position, total, now));
  }

  done(): void {
    this.#out(this.#renderer.bytesDone());
  }

  write(line: string): void {
    this.#out(this.#renderer.logLine(line));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#out(this.#renderer.finish(this.#now()));
  }
}

/** Both: a PROGRESS_MONITOR gets every message, the terminal shows them. */
export class TeeMonitor implements MonitorSink {
  readonly rendersHelperWarnings: boolean;
  readonly #sinks: readonly MonitorSink[];

  constructor(...sinks: MonitorSink[]) {
    this.#sinks = sinks;
    this.rendersHelperWarnings = sinks.some((s) => s.rendersHelperWarnings);
  }

  send(message: MonitorMessage): void {
    for (const sink of this.#sinks) sink.send(message);
  }

  async close(): Promise<void> {
    for (const sink of this.#sinks) await sink.close();
  }
}
