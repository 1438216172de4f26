import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OS_PARAMETERS, renderParametersList, SECRET_PARAMETER_NAMES } from '../../src/ganeti/os-parameters.ts';

describe('parameters.list', () => {
  it('lists the twelve parameters, each with a one-line description and no blank line', () => {
    const text = renderParametersList();
    assert.ok(text.endsWith('\n'));
    const lines = text.slice(0, -1).split('\n');
    assert.equal(lines.length, 12);
    for (const line of lines) assert.match(line, /^[a-z_]+ \S.*$/);
    assert.deepEqual(
      lines.map((l) => l.split(' ')[0]),
      [
        'img_id',
        'img_format',
        'img_passwd',
        'img_passwd_hash',
        'img_properties',
        'inst_properties',
        'img_personality',
        'auth_keys',
        'config_url',
        'os_product_key',
        'os_answer_file',
        'cloud_userdata',
      ],
    );
    assert.equal(OS_PARAMETERS.length, 12);
  });

  it('marks exactly the five secret parameters', () => {
    assert.deepEqual([...SECRET_PARAMETER_NAMES].sort(), [
      'auth_keys',
      'cloud_userdata',
      'img_passwd',
      'img_passwd_hash',
      'os_product_key',
    ]);
  });
});
