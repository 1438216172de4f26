/**
 * Progress messages, compatible with upstream snf-image (see
 * src/schemas/monitor-message.schema.json). Timestamps are float seconds since the epoch.
 */
export type MonitorMessage =
  | { type: 'image-info'; messages: string[]; timestamp: number }
  | { type: 'image-error'; messages?: string[]; stderr?: string; timestamp: number }
  | { type: 'image-copy-progress'; position: number; total: number; progress: number; timestamp: number }
  | { type: 'image-helper'; subtype: 'task-start' | 'task-end'; task: string; timestamp: number }
  | { type: 'image-helper'; subtype: 'warning' | 'error'; messages?: string[]; stderr?: string; timestamp: number };

function now(): number {
  return Date.now() / 1000;
}

export const info = (...messages: string[]): MonitorMessage => ({ type: 'image-info', messages, timestamp: now() });
export const error = (...messages: string[]): MonitorMessage => ({ type: 'image-error', messages, timestamp: now() });

export function copyProgress(position: number, total: number): MonitorMessage {
  const progress = total > 0 ? Math.round((position * 10000) / total) / 100 : 0;
  return { type: 'image-copy-progress', position, total, progress, timestamp: now() };
}

export const taskStart = (task: string): MonitorMessage => ({
  type: 'image-helper',
  subtype: 'task-start',
  task,
  timestamp: now(),
});
export const taskEnd = (task: string): MonitorMessage => ({
  type: 'image-helper',
  subtype: 'task-end',
  task,
  timestamp: now(),
});
export const helperWarning = (...messages: string[]): MonitorMessage => ({
  type: 'image-helper',
  subtype: 'warning',
  messages,
  timestamp: now(),
});
export const helperError = (...messages: string[]): MonitorMessage => ({
  type: 'image-helper',
  subtype: 'error',
  messages,
  timestamp: now(),
});
