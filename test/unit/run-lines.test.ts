/**
 * runLines (test/support/run-lines.ts), which the demo uses to run the helper VM and the
 * test image builds at the same time: every line of both streams, the exit status.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runLines } from '../support/run-lines.ts';

test('runLines hands over stdout and stderr line by line and resolves with the exit code', async () => {
  const lines: string[] = [];
  const status = await runLines(
    'sh',
    ['-c', 'printf "one\\ntwo"; echo three >&2; exit 3'],
    { PATH: process.env.PATH ?? '' },
    (line) => lines.push(line),
  );
  assert.equal(status, 3);
  assert.deepEqual([...lines].sort(), ['one', 'three', 'two']);
});

test('runLines resolves with the signal name when the command is killed', async () => {
  const status = await runLines('sh', ['-c', 'kill -TERM $$'], undefined, () => undefined);
  assert.equal(status, 'SIGTERM');
});
