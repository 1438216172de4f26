/**
 * SerialTail follows a serial-port file the helper VM (hostile) writes: bounded work and
 * memory whatever it writes, long lines cut with a marker, at most maxBytes read per port.
 * Plus property tests of SerialTail and of the monitor protocol's parseEvent.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_LINE, parseEvent, toMonitorMessage } from '../../src/helper-vm/monitor-protocol.ts';
import { SerialTail } from '../../src/helper-vm/serial-tail.ts';
import { validateJson } from '../../src/schemas/validate.ts';

const root = mkdtempSync(join(tmpdir(), 'snf-serial-'));
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const newFile = () => join(root, `port-${files++}`);

const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

describe('SerialTail', () => {
  it('follows 64 MiB without a newline with bounded bytes read and kept', async () => {
    const path = newFile();
    execFileSync('truncate', ['-s', '64M', path]);
    const lines: string[] = [];
    const tail = new SerialTail(path, (line) => lines.push(line));
    await tail.poll();
    await tail.stop();
    const longest = Math.max(...lines.map((l) => l.length));
    assert.ok(longest <= 4096 + 64, `a delivered line of ${longest} characters`);
    assert.ok(tail.stats.bytesRead <= 8 * 1024 * 1024 + 64 * 1024, `read ${tail.stats.bytesRead} bytes`);
    assert.ok(tail.stats.maxBufferedBytes <= 4096, `kept ${tail.stats.maxBufferedBytes} bytes of an unfinished line`);
    assert.match(lines.at(-1) ?? '', /serial output beyond \d+ bytes ignored/);
  });

  it('cuts a very long line with a marker and keeps the lines after it', async () => {
    const path = newFile();
    writeFileSync(path, `${'a'.repeat(10_000)}\r\nshort\r\nlast`);
    const lines: string[] = [];
    const tail = new SerialTail(path, (line) => lines.push(line));
    await tail.poll();
    await tail.stop();
    assert.equal(lines.length, 3);
    assert.ok(lines[0]?.startsWith('a'.repeat(4096)));
    assert.match(lines[0]?.slice(4096) ?? '', /^ \[\.\.\. 5904 more bytes cut\]$/);
    assert.deepEqual(lines.slice(1), ['short', 'last']);
  });
});

/** What SerialTail must deliver for `input` when no line is too long: lines without CR, the last one even without a newline. */
function referenceLines(input: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const nl = input.indexOf(0x0a, start);
    const end = nl === -1 ? input.length : nl;
    const line = Buffer.from(input.subarray(start, end).filter((b) => b !== 0x0d)).toString('utf8');
    if (nl === -1) {
      if (end > start) out.push(line);
      return out;
    }
    out.push(line);
    start = nl + 1;
  }
}

describe('SerialTail properties (fast-check)', () => {
  const byte = fc.oneof(
    fc.constant(0x0a),
    fc.constant(0x0d),
    fc.constantFrom(0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f),
    fc.integer({ min: 0, max: 255 }),
  );
  const chunks = fc.array(
    fc
      .uint8Array({ minLength: 0, maxLength: 300 })
      .chain((a) => fc.array(byte, { minLength: a.length, maxLength: a.length }).map((b) => Uint8Array.from(b))),
    { maxLength: 12 },
  );
  const RUNS = 150;

  it('any bytes in any chunks: lines bounded, no newline, nothing beyond maxBytes read, exact when no line is too long', async () => {
    const maxLineBytes = 64;
    const maxBytes = 2048;
    await fc.assert(
      fc.asyncProperty(chunks, async (parts) => {
        const path = newFile();
        writeFileSync(path, '');
        const lines: string[] = [];
        const tail = new SerialTail(path, (line) => lines.push(line), { maxLineBytes, maxBytes });
        for (const part of parts) {
          appendFileSync(path, part);
          await tail.poll();
        }
        await tail.stop();
        rmSync(path);
        const input = Buffer.concat(parts);
        for (const line of lines) {
          assert.ok(Buffer.byteLength(line) <= maxLineBytes * 3 + 64, `line of ${Buffer.byteLength(line)} bytes`);
          assert.ok(!/[\r\n]/.test(line));
        }
        assert.ok(tail.stats.bytesRead <= maxBytes);
        assert.ok(tail.stats.maxBufferedBytes <= maxLineBytes);
        const tooLong = input
          .toString('latin1')
          .split('\n')
          .some((l) => l.length > maxLineBytes);
        if (!tooLong && input.length <= maxBytes) assert.deepEqual(lines, referenceLines(input));
      }),
      { numRuns: RUNS },
    );
    console.log(`# fuzz SerialTail ${RUNS} runs`);
  });
});

describe('parseEvent properties (fast-check)', () => {
  const RUNS = 3000;
  const prefix = fc.constantFrom('TASK_START:', 'TASK_END:', 'WARNING:', 'ERROR:', '', 'TASK_START', 'ERROR: ');
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 80 }),
    fc.string({ unit: 'grapheme', maxLength: 80 }),
    fc.string({ maxLength: 3000 }),
    fc.constantFrom('\u001b[2J', '\u001b]0;x\u0007', '\u009b31m', '\u202eevil', ''),
  );
  const line = fc.tuple(prefix, fc.array(text, { maxLength: 4 })).map(([p, t]) => p + t.join(''));

  it('any line: undefined or a bounded, printable event whose monitor message is schema-valid; never throws', () => {
    fc.assert(
      fc.property(line, (input) => {
        const event = parseEvent(input);
        if (event === undefined) return;
        const value = event.kind === 'task-start' || event.kind === 'task-end' ? event.task : event.message;
        assert.ok(value.length <= MAX_LINE, `a value of ${value.length} characters`);
        assert.ok(!CONTROL.test(value), JSON.stringify(value));
        assert.deepEqual(validateJson('monitor-message', toMonitorMessage(event), 'message'), []);
      }),
      { numRuns: RUNS },
    );
    console.log(`# fuzz parseEvent ${RUNS} runs`);
  });
});
