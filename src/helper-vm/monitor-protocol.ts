/**
 * The line protocol the helper writes on its third serial port (upstream-compatible):
 *   TASK_START:<task>  TASK_END:<task>  WARNING:<message>  ERROR:<message>
 * and its translation into image-helper progress messages.
 */
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

export function parseEvent(line: string): HelperEvent | undefined {
  const m = /^(TASK_START|TASK_END|WARNING|ERROR):(.*)$/.exec(line.replace(/\r$/, ''));
  if (!m) return undefined;
  const value = (m[2] ?? '').slice(0, MAX_LINE);
  switch (m[1]) {
    case 'TASK_START':
      return { kind: 'task-start', task: value };
    case 'TASK_END':
      return { kind: 'task-end', task: value };
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
