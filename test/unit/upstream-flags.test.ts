/**
 * Boolean image properties read as upstream snf-image 0.23's check_yes_no
 * (snf-image-helper/common.sh.in): the same meaning for every value, and a warning where
 * upstream warns (empty: no; unknown: yes).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../helper/runner.ts';
import { TASKS } from '../../helper/task-table.ts';
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';
import { parseOsParams, wrapSecrets } from '../../src/ganeti/params.ts';
import schema from '../../src/schemas/img-properties.schema.json' with { type: 'json' };
import { FLAG_PROPERTIES, flagWarning, flagWarnings, isYes } from '../../src/util/flags.ts';

describe("boolean properties as upstream's check_yes_no", () => {
  it('yes/true/on/1/set (any case) mean yes, no/false/off/0/unset and absent mean no, without a warning', () => {
    for (const value of ['yes', 'YES', 'True', 'on', '1', 'set', 'Set'])
      assert.deepEqual([isYes(value), flagWarning('CLOUD_INIT', value)], [true, undefined], value);
    for (const value of ['no', 'No', 'FALSE', 'off', '0', 'unset', 'UNSET'])
      assert.deepEqual([isYes(value), flagWarning('CLOUD_INIT', value)], [false, undefined], value);
    assert.equal(isYes(undefined), false);
  });

  it('empty means no and any other value yes, each with upstream warning', () => {
    assert.equal(isYes(''), false);
    assert.equal(flagWarning('DO_SYNC', ''), "Variable `DO_SYNC' defined but empty. Will treat this as a `NO'");
    for (const value of ['maybe', 'y', '2', 'enabled']) {
      assert.equal(isYes(value), true, value);
      assert.equal(
        flagWarning('EXCLUDE_TASK_DELETESSHKEYS', value),
        `Invalid value for variable: \`EXCLUDE_TASK_DELETESSHKEYS' (=${value}). Will treat this as a \`YES'`,
      );
    }
    assert.ok(!flagWarning('X', `a\nb${'c'.repeat(200)}`)?.includes('\n'), 'one line, bounded');
  });

  it('warns once per boolean property and never about other properties', () => {
    assert.deepEqual(
      flagWarnings({ CLOUD_INIT: 'set', EXCLUDE_TASK_ADDSWAP: 'enabled', NM_NETWORKING: '', USERS: 'maybe' }),
      [
        "Invalid value for variable: `EXCLUDE_TASK_ADDSWAP' (=enabled). Will treat this as a `YES'",
        "Variable `NM_NETWORKING' defined but empty. Will treat this as a `NO'",
      ],
    );
  });

  it('img_properties accepts every value upstream accepts (set/unset, unknown values), not objects', () => {
    const check = (properties: string) =>
      parseOsParams(
        wrapSecrets(
          new Map([
            ['img_id', 'debian.img'],
            ['img_format', 'diskdump'],
            ['img_properties', properties],
          ]),
        ),
        { imageDir: '/var/lib/snf-image', requireImage: true },
      );
    const ok = check(
      '{"EXCLUDE_ALL_TASKS": "set", "cloud_init": "unset", "EXCLUDE_TASK_AddSwap": "maybe", "DO_SYNC": 1}',
    );
    assert.deepEqual(ok.problems, []);
    assert.deepEqual(ok.params.imgProperties, {
      EXCLUDE_ALL_TASKS: 'set',
      CLOUD_INIT: 'unset',
      EXCLUDE_TASK_ADDSWAP: 'maybe',
      DO_SYNC: '1',
    });
    assert.deepEqual(check('{"CLOUD_INIT": {"a": 1}}').problems, [
      'img_properties.CLOUD_INIT: must be string,number,boolean',
    ]);
  });

  it('the task runner honours them: EXCLUDE_TASK_<TASK>=set skips, =unset runs, CLOUD_INIT=enabled is cloud-init mode', () => {
    const task = TASKS.find((t) => t.name === 'DeleteSSHKeys');
    const cloudInit = TASKS.find((t) => t.name === 'InitializeDatasource');
    assert.ok(task && cloudInit);
    const config = { secrets: {}, personality: [] } as unknown as ConfigDocument;
    const ctx = (properties: Record<string, string>) => ({ properties: { OSFAMILY: 'linux', ...properties }, config });
    assert.equal(decide(task, ctx({ EXCLUDE_TASK_DELETESSHKEYS: 'set' })).run, false);
    assert.equal(decide(task, ctx({ EXCLUDE_TASK_DELETESSHKEYS: 'unset' })).run, true);
    assert.equal(decide(cloudInit, ctx({ CLOUD_INIT: 'enabled' })).run, true);
    assert.equal(decide(cloudInit, ctx({ CLOUD_INIT: '' })).run, false);
  });

  it("the schema's boolean properties are the table's", () => {
    const properties = schema.properties as Record<string, { $ref?: string }>;
    const flags = Object.keys(properties).filter((name) => properties[name]?.$ref === '#/definitions/flag');
    // EXCLUDE_TASK_<TASK> are flags too, one per excludable task of the task table.
    assert.deepEqual(flags.filter((name) => !name.startsWith('EXCLUDE_TASK_')).sort(), [...FLAG_PROPERTIES].sort());
    assert.ok(flags.includes('EXCLUDE_TASK_DELETESSHKEYS'));
  });
});
