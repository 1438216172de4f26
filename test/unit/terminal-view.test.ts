/**
 * The terminal view's rendering: events in, text out. A tiny screen model (carriage
 * return, erase to end of line, newline: test/support/terminal-screen.ts) turns the text
 * into what a person sees.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MonitorMessage } from '../../src/monitor/messages.ts';
import { TerminalRenderer, TerminalView } from '../../src/monitor/terminal-view.ts';
import { screenLines as screen } from '../support/terminal-screen.ts';

const info = (at: number, ...messages: string[]): MonitorMessage => ({ type: 'image-info', messages, timestamp: at });
const start = (at: number, task: string): MonitorMessage => ({
  type: 'image-helper',
  subtype: 'task-start',
  task,
  timestamp: at,
});
const end = (at: number, task: string): MonitorMessage => ({
  type: 'image-helper',
  subtype: 'task-end',
  task,
  timestamp: at,
});
const warning = (at: number, text: string): MonitorMessage => ({
  type: 'image-helper',
  subtype: 'warning',
  messages: [text],
  timestamp: at,
});

const MiB = 1024 * 1024;

/** A task line: mark, name in 28 columns, time right-aligned in 7, status. */
function row(mark: string, name: string, time: string, status: string): string {
  return `  ${mark} ${name.padEnd(28)} ${time.padStart(7)}  ${status}`;
}

describe('terminal view', () => {
  it('a deployment: bar, one line per task (done, skipped, warning), the result and the total', () => {
    const r = new TerminalRenderer(100);
    let out = r.message(info(100, 'Starting image copy...'));
    out += r.bytes(0, 64 * MiB, 100);
    out += r.bytes(32 * MiB, 64 * MiB, 101);
    out += r.bytes(64 * MiB, 64 * MiB, 102);
    out += r.bytesDone();
    out += r.message(info(102, 'Image copy finished.'));
    out += r.message({ type: 'image-copy-progress', position: 1, total: 1, progress: 100, timestamp: 102 });
    out += r.message(info(102.5, 'Starting customization VM...'));
    out += r.message(start(110, 'FixPartitionTable'));
    out += r.message(end(110.4, 'FixPartitionTable'));
    out += r.message(warning(110.5, 'Task DeleteSSHKeys skipped: excluded by EXCLUDE_TASK_DeleteSSHKeys'));
    out += r.message(start(111, 'ConfigureNetwork'));
    out += r.message(warning(111.1, 'no network configuration found'));
    out += r.message(end(112, 'ConfigureNetwork'));
    out += r.message(info(113, 'Customization VM exited normally.', 'Customization status is: SUCCESS'));
    out += r.finish(124.25);
    assert.deepEqual(screen(out), [
      'Starting image copy...',
      '[##############################] 100.0% 64.0 MiB of 64.0 MiB 32 MiB/s',
      'Image copy finished.',
      'Starting customization VM...',
      row('✓', 'FixPartitionTable', '0.4 s', 'done'),
      row('–', 'DeleteSSHKeys', '', 'skipped: excluded by EXCLUDE_TASK_DeleteSSHKeys'),
      row('!', 'ConfigureNetwork', '1.0 s', 'warning'),
      '      warning: no network configuration found',
      'Customization VM exited normally.',
      'Customization status is: SUCCESS',
      '✓ done in 24.3 s',
    ]);
  });

  it('the running task is one live line, replaced by its result', () => {
    const r = new TerminalRenderer(0);
    const running = r.message(start(1, 'MountImage'));
    assert.deepEqual(screen(running), [`  ▸ ${'MountImage'.padEnd(28)}   running`]);
    const after = running + r.message(end(3, 'MountImage'));
    assert.deepEqual(screen(after), [row('✓', 'MountImage', '2.0 s', 'done')]);
  });

  it('a log line during a task goes above it; the task line is drawn again', () => {
    const r = new TerminalRenderer(0);
    let out = r.message(start(1, 'ResizeFs'));
    out += r.logLine('WARN  progress monitor died\n');
    assert.deepEqual(screen(out), ['WARN  progress monitor died', `  ▸ ${'ResizeFs'.padEnd(28)}   running`]);
  });

  it('a failure: the failed task, no repeated reason, failed after the total', () => {
    const r = new TerminalRenderer(10);
    let out = r.message(start(11, 'InstallUnattend'));
    out += r.message({ type: 'image-helper', subtype: 'error', messages: ['cannot write file'], timestamp: 13 });
    // The host's error log line comes after the failed task's line.
    out += r.logLine('ERROR Image customization failed.\n');
    out += r.message({ type: 'image-error', messages: ['Task InstallUnattend: cannot write file'], timestamp: 13 });
    out += r.finish(15);
    const lines = screen(out);
    assert.deepEqual(lines, [
      row('✗', 'InstallUnattend', '2.0 s', 'failed'),
      'ERROR Image customization failed.',
      '✗ failed after 5.0 s',
    ]);
    assert.ok(!out.includes('cannot write file'));
  });

  it('a helper that dies in a task: the task is failed at the end', () => {
    const r = new TerminalRenderer(0);
    const out = r.message(start(1, 'AddSwap')) + r.finish(4);
    assert.deepEqual(screen(out), [row('✗', 'AddSwap', '3.0 s', 'failed'), '✓ done in 4.0 s']);
  });

  it('a write of unknown size shows bytes and speed, no percentage', () => {
    const r = new TerminalRenderer(0);
    assert.deepEqual(screen(r.bytes(0, undefined, 0) + r.bytes(8 * MiB, undefined, 2) + r.bytesDone()), [
      'copied 8.0 MiB 4 MiB/s',
    ]);
  });

  it('the view writes each message once and the bar at most every 200 ms', () => {
    const written: string[] = [];
    let now = 50;
    const view = new TerminalView(
      (t) => written.push(t),
      () => now,
    );
    assert.equal(view.rendersHelperWarnings, true);
    view.update(1, 10);
    now += 0.1;
    view.update(2, 10);
    now += 0.15;
    view.update(3, 10);
    view.update(10, 10, true);
    view.done();
    view.send(info(now, 'Image copy finished.'));
    void view.close();
    void view.close();
    const lines = screen(written.join(''));
    assert.equal(written.filter((w) => w.includes('[')).length, 3);
    assert.equal(lines.filter((l) => l === 'Image copy finished.').length, 1);
    assert.equal(lines.at(-1), '✓ done in 0.3 s');
  });
});
