import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseShellConf } from '../../src/config/shell-conf.ts';
import { UserError } from '../../src/util/errors.ts';

const values = (text: string) => Object.fromEntries(parseShellConf(text, 'test.conf').map((e) => [e.key, e.value]));

describe('shell-style configuration parser', () => {
  it('reads KEY=VALUE lines, comments, export and blank lines', () => {
    assert.deepEqual(values('# comment\n\nA=1\nexport B=two\n  C=three # trailing\n'), {
      A: '1',
      B: 'two',
      C: 'three',
    });
  });

  it('handles quoting like a shell', () => {
    assert.deepEqual(values(`A='single $X "q"'\nB="double \\"q\\" \\$ \\\\"\nC=a\\ b\nD=""\nE=''`), {
      A: 'single $X "q"',
      B: 'double "q" $ \\',
      C: 'a b',
      D: '',
      E: '',
    });
  });

  it('expands earlier keys in $VAR and ${VAR}', () => {
    assert.deepEqual(values('BASE=/var/lib\nA=$BASE/x\nB="${BASE}/y"\nC=\'$BASE\'\nD=$UNSET'), {
      BASE: '/var/lib',
      A: '/var/lib/x',
      B: '/var/lib/y',
      C: '$BASE',
      D: '',
    });
  });

  it('joins continuation lines', () => {
    assert.deepEqual(values('A="one \\\ntwo"'), { A: 'one two' });
  });

  it('refuses shell code with the file and line named', () => {
    for (const [text, rule] of [
      ['A=$(id)', /test\.conf:1: command substitution is not supported/],
      ['\nA=`id`', /test\.conf:2: command substitution is not supported/],
      ['A=x; rm -rf /', /test\.conf:1: unsupported shell syntax ';'/],
      ['A=two words', /unquoted whitespace/],
      ['A="open', /unterminated double quote/],
      ["A='open", /unterminated single quote/],
      ['not a line', /expected KEY=VALUE/],
      ['1A=x', /not a valid variable name/],
    ] as const) {
      assert.throws(
        () => parseShellConf(text, 'test.conf'),
        (e: unknown) => e instanceof UserError && rule.test(e.message),
        text,
      );
    }
  });
});
