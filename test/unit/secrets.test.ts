import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/log/logger.ts';
import { LogMonitor } from '../../src/monitor/progress-monitor.ts';
import { error as errorMessage } from '../../src/monitor/messages.ts';
import { describeError, UserError } from '../../src/util/errors.ts';
import { scrub, Secret } from '../../src/util/secret.ts';

const SECRET = 'Tr0ub4dor&3-unique';

describe('secret redaction', () => {
  it('a Secret never turns into its text', () => {
    const s = new Secret(SECRET);
    assert.equal(String(s), '[redacted]');
    assert.equal(`${s}`, '[redacted]');
    assert.equal(JSON.stringify({ s }), '{"s":"[redacted]"}');
    assert.ok(!inspect({ s }).includes(SECRET));
    assert.equal(s.reveal(), SECRET);
  });

  it('scrubs registered secret text, also JSON-escaped and per line', () => {
    new Secret('line-one-secret\nline-two-secret');
    new Secret('quote"secret');
    assert.equal(scrub('x line-two-secret y'), 'x [redacted] y');
    assert.equal(scrub(JSON.stringify('a quote"secret b')), '"a [redacted] b"');
  });

  for (const format of ['text', 'json'] as const) {
    it(`the ${format} log never contains a secret`, () => {
      const lines: string[] = [];
      const logger = createLogger({ format, level: 'debug', sink: { write: (l) => lines.push(l) } });
      const secret = new Secret(SECRET);
      logger.info(
        { img_passwd: SECRET, params: { auth_keys: SECRET }, OSP_IMG_PASSWD: SECRET, wrapped: secret },
        'params',
      );
      logger.error(`failed with ${SECRET} inside`);
      logger.debug({ err: new Error(`boom ${SECRET}`) }, 'error object');
      assert.equal(lines.length, 3);
      for (const line of lines) assert.ok(!line.includes(SECRET), line);
      assert.match(lines[1] ?? '', /failed with \[redacted\] inside/);
    });
  }

  it('error text and monitor messages are scrubbed', () => {
    new Secret(SECRET);
    assert.ok(!describeError(new UserError(`bad ${SECRET}`)).includes(SECRET));
    const out: string[] = [];
    new LogMonitor((l) => out.push(l)).send(errorMessage(`oops ${SECRET}`));
    assert.match(out[0] ?? '', /^\[MONITOR\] \{"type":"image-error","messages":\["oops \[redacted\]"\]/);
  });

  it('formats readable text lines', () => {
    const lines: string[] = [];
    createLogger({ format: 'text', sink: { write: (l) => lines.push(l) } }).warn(
      { disk: '/dev/loop0', bytes: 12 },
      'copy slow',
    );
    assert.match(lines[0] ?? '', /^\d{4}-\d\d-\d\dT[\d:.]+Z WARN {2}copy slow disk=\/dev\/loop0 bytes=12\n$/);
  });
});
