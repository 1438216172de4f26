/**
 * Regression tests for what the fuzzing of hostile input found (test/unit/fuzz-*.test.ts):
 * each is a counterexample the properties reported, kept as a plain test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseShellConf } from '../../src/config/shell-conf.ts';
import { oneLine, UserError } from '../../src/util/errors.ts';
import { assertLinearTime, LINE_BREAK } from '../support/fuzz.ts';

/** The error `fn` throws (it must throw). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail('expected an error');
}

describe('one-line error messages (src/util/errors.ts)', () => {
  it('joins lines broken by any Unicode line break, not only LF', () => {
    for (const br of ['\n', '\r', '\r\n', '\v', '\f', '\u0085', '\u2028', '\u2029']) assert.equal(oneLine(`first${br} second `), 'first second');
    assert.equal(new UserError('a \u0085\n b').message, 'a b');
  });

  it('a configuration key with a NEL is named on one line', () => {
    const error = thrown(() => parseShellConf('A\u0085B=1', 'snf-image.conf'));
    assert.ok(error instanceof UserError);
    assert.ok(!LINE_BREAK.test(error.message), JSON.stringify(error.message));
    assert.match(error.message, /^snf-image\.conf:1: 'A B' is not a valid variable name$/);
  });

  it('takes time linear in the message (a key of many blanks)', () => {
    assertLinearTime((n) => `$${' '.repeat(n)}=`, (text) => parseShellConf(text, 'snf-image.conf'));
  });
});
