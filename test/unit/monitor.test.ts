import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as m from '../../src/monitor/messages.ts';
import { createMonitor, LogMonitor, ProgramMonitor } from '../../src/monitor/progress-monitor.ts';
import { configureLogging } from '../../src/log/logger.ts';
import { validateJson } from '../../src/schemas/validate.ts';

function script(body: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'snf-mon-'));
  const file = join(dir, 'monitor');
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

describe('progress monitor', () => {
  it('every message kind matches the published schema', () => {
    const all = [
      m.info('Starting image copy...'),
      m.error('Image customization failed.'),
      m.copyProgress(335547996, 474398720),
      m.taskStart('FixPartitionTable'),
      m.taskEnd('FixPartitionTable'),
      m.helperWarning('No swap partition defined'),
      m.helperError('Unable to read partition table.'),
    ];
    for (const message of all)
      assert.deepEqual(validateJson('monitor-message', message, 'message'), [], JSON.stringify(message));
    assert.equal((m.copyProgress(335547996, 474398720) as { progress: number }).progress, 70.73);
    assert.notDeepEqual(
      validateJson('monitor-message', { type: 'image-helper', subtype: 'task-stop', task: 'x', timestamp: 1 }, 'm'),
      [],
    );
    assert.notDeepEqual(
      validateJson('monitor-message', { type: 'image-copy-progress', position: 1, timestamp: 1 }, 'm'),
      [],
    );
  });

  it('without a program, messages go to the log prefixed [MONITOR]', () => {
    const out: string[] = [];
    new LogMonitor((l) => out.push(l)).send(m.info('hello'));
    const [line] = out;
    assert.match(line ?? '', /^\[MONITOR\] /);
    assert.deepEqual(JSON.parse((line ?? '').slice(10)).messages, ['hello']);
  });

  it('feeds JSON lines to the program with the instance name as argv[1]', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-mon-out-'));
    const program = script(`echo "$1" > ${dir}/argv; cat > ${dir}/stdin`);
    const monitor = createMonitor(program, 'inst1.gnt.test');
    monitor.send(m.info('one'));
    monitor.send(m.copyProgress(5, 10));
    await monitor.close();
    assert.equal(readFileSync(join(dir, 'argv'), 'utf8'), 'inst1.gnt.test\n');
    const lines = readFileSync(join(dir, 'stdin'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    assert.deepEqual(
      lines.map((l) => l.type),
      ['image-info', 'image-copy-progress'],
    );
  });

  it('a monitor that dies does not fail the deployment', async () => {
    const monitor = createMonitor(script('exit 3'), 'inst1');
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 1000; i++) monitor.send(m.info(`message ${i} ${'x'.repeat(200)}`));
    await monitor.close();
    const missing = createMonitor('/nonexistent/monitor', 'inst1');
    missing.send(m.info('x'));
    await missing.close();
  });

  it('a monitor that does not keep up: the queue stays bounded, oldest progress messages dropped and counted, send never blocks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-mon-slow-'));
    const logged: string[] = [];
    configureLogging({ sink: { write: (line) => void logged.push(line) } });
    try {
      const monitor = new ProgramMonitor(script(`sleep 2; cat > ${dir}/stdin`), 'inst1');
      const SENT = 20_000;
      const started = Date.now();
      for (let i = 0; i < SENT; i++) monitor.send(i % 5000 === 0 ? m.info(`milestone ${i}`) : m.copyProgress(i, SENT));
      monitor.send(m.info('the end'));
      assert.ok(Date.now() - started < 1500, 'send does not wait for the monitor');
      await monitor.close();
      const lines = readFileSync(join(dir, 'stdin'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; messages?: string[]; position?: number });
      assert.ok(
        lines.length < SENT / 2,
        `${lines.length} of ${SENT + 1} messages queued for a monitor that did not read`,
      );
      assert.deepEqual(
        lines.filter((l) => l.type === 'image-info').map((l) => l.messages?.[0]),
        ['milestone 0', 'milestone 5000', 'milestone 10000', 'milestone 15000', 'the end'],
      );
      const positions = lines.filter((l) => l.type === 'image-copy-progress').map((l) => l.position ?? -1);
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => a - b),
        'order kept',
      );
      const dropped = /progress monitor did not keep up: (\d+) messages dropped/.exec(logged.join(''));
      assert.ok(dropped, logged.join(''));
      assert.equal(Number(dropped[1]) + lines.length, SENT + 1);
    } finally {
      configureLogging({});
    }
  });

  it('a monitor that never exits is terminated, then killed, at the end', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-mon-stuck-'));
    const monitor = new ProgramMonitor(
      script(`trap '' TERM HUP INT; echo $$ > ${dir}/pid; exec 0<&-; while :; do sleep 0.2; done`),
      'inst1',
      { graceMs: 300, killAfterMs: 300 },
    );
    monitor.send(m.info('x'));
    while (!existsSync(join(dir, 'pid'))) await new Promise((r) => setTimeout(r, 20));
    await monitor.close();
    const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
    assert.ok(!existsSync(`/proc/${pid}`), 'the monitor is gone');
  });
});
