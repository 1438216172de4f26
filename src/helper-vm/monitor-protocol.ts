/**
 * The line protocol the helper writes on its third serial port (upstream-compatible):
 *   TASK_START:<task>  TASK_END:<task>  WARNING:<message>  ERROR:<message>
 * and its translation into image-helper progress messages. Lines come from the helper VM
 * (hostile): values are made printable and bounded; a line that is not an event is ignored.
 */
import { printable } from '../log/printable.ts';
import * as msg from '../monitor/messages.ts';
import type { MonitorMessage } from '../monitor/messages.ts';

export type HelperEvent =
  | { kind: 'task-start'; task: string }
  | { kind: 'task-end'; task: string }
  | { kind: 'warning'; message: string }
  | { kind: 'error'; message: string };

export const MAX_LINE = 512;

export function formatEvent(event: HelperEvent): string {
  const text = (s: string) => s.replace(/[\r\n]+/g, ' ').slice(0, MAX_LINE - 16);
  switch (event.kind) {
    case 'task-start':
      return `TASK_START:${text(event.task)}`;
    case 'task-end':
      return `TASK_END:${text(event.task)}`;
    case 'warning':
      return `WARNING:${text(event.message)}`;
    case 'error':
      return `ERROR:${text(event.message)}`;
  }
}

const EVENT_LINE = /^(TASK_START|TASK_END|WARNING|ERROR):/;

/** The event a line carries, or undefined for any other line (and a task event without a task name). */
export function parseEvent(line: string): HelperEvent | undefined {
  const m = EVENT_LINE.exec(line);
  if (!m) return undefined;
  // Bounded before and after escaping (an escape is longer than the character it shows).
  const value = printable(line.slice(m[0].length, m[0].length + MAX_LINE).replace(/\r?\n?$/, '')).slice(0, MAX_LINE);
  switch (m[1]) {
    case 'TASK_START':
    case 'TASK_END': {
      const task = value.trim();
      if (task === '') return undefined;
      return { kind: m[1] === 'TASK_START' ? 'task-start' : 'task-end', task };
    }
    case 'WARNING':
      return { kind: 'warning', message: value };
    default:
      return { kind: 'error', message: value };
  }
}

export function toMonitorMessage(event: HelperEvent): MonitorMessage {
  switch (event.kind) {
    case 'task-start':
      return msg.taskStart(event.task);
    case 'task-end':
      return msg.taskEnd(event.task);
    case 'warning':
      return msg.helperWarning(event.message);
    case 'error':
      return msg.helperError(event.message);
  }
}
