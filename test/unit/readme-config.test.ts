/**
 * The README's configuration table lists exactly the keys of src/config/settings.ts, each
 * with its default: the table is written by hand, so this keeps it true.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SETTING_KEYS, SETTINGS } from '../../src/config/settings.ts';

function readmeTable(): Map<string, string> {
  const lines = readFileSync('README.md', 'utf8').split('\n');
  const start = lines.indexOf('| key | default | meaning |');
  assert.ok(start >= 0, 'the configuration table');
  const rows = new Map<string, string>();
  for (const line of lines.slice(start + 2)) {
    const m = /^\| `([A-Z_0-9]+)` \| (.*?) \| .* \|$/.exec(line);
    if (!m) break;
    rows.set(m[1] as string, m[2] === '*(empty)*' ? '' : (m[2] as string).replace(/^`(.*)`$/, '$1'));
  }
  return rows;
}

describe('README configuration table', () => {
  it('lists every configuration key with its default, and nothing else', () => {
    const rows = readmeTable();
    assert.deepEqual(
      SETTING_KEYS.filter((k) => !rows.has(k)),
      [],
      'keys missing from the README table',
    );
    assert.deepEqual(
      [...rows.keys()].filter((k) => !(SETTING_KEYS as string[]).includes(k)),
      [],
      'README rows that are no configuration key',
    );
    for (const key of SETTING_KEYS) assert.equal(rows.get(key), SETTINGS[key].default, key);
  });
});
