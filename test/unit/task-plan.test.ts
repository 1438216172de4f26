/**
 * The one task decision (helper/plan/decide.ts), as the host asks it: whether create and
 * rename need the helper at all, and whether DeleteSSHKeys needs host keys.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decideTask, decisionFor, helperNeeded, planTasks, type TaskInputs } from '../../helper/plan/decide.ts';
import { OS_FAMILIES } from '../../helper/plan/families.ts';
import type { ImageProperties } from '../../helper/plan/properties.ts';
import { TASK_SPECS } from '../../helper/plan/task-specs.ts';

const none: TaskInputs = { passwordOrKeys: false, personality: false };
const host = (properties: ImageProperties, inputs: TaskInputs = none) => ({ properties, family: undefined, inputs });

describe('task decision on the host', () => {
  it('rename runs only the hostname task and the mounts', () => {
    assert.deepEqual(
      planTasks('rename', host({})).map((t) => t.name),
      ['MountImage', 'AssignHostname', 'UmountImage'],
    );
  });

  it('rename does not boot the helper when the hostname task would not run, and says why', () => {
    assert.deepEqual(helperNeeded('rename', host({})), { boot: true });
    for (const [properties, why] of [
      [{ EXCLUDE_ALL_TASKS: 'yes' }, 'EXCLUDE_ALL_TASKS is set'],
      [{ EXCLUDE_MOUNTED_TASKS: 'yes' }, 'no task would run (AssignHostname: excluded by EXCLUDE_MOUNTED_TASKS)'],
      [{ CLOUD_INIT: 'yes' }, 'no task would run (AssignHostname: not run on rename in cloud-init mode)'],
      [
        { EXCLUDE_TASK_ASSIGNHOSTNAME: 'yes' },
        'no task would run (AssignHostname: excluded by EXCLUDE_TASK_AssignHostname)',
      ],
    ] as const) {
      assert.deepEqual(helperNeeded('rename', host(properties)), { boot: false, why }, JSON.stringify(properties));
    }
  });

  it('create skips the helper only when no task but the mounts would run, for any family', () => {
    assert.deepEqual(helperNeeded('create', host({ EXCLUDE_MOUNTED_TASKS: 'yes' })), { boot: true });
    const nothing = helperNeeded(
      'create',
      host({
        EXCLUDE_MOUNTED_TASKS: 'yes',
        EXCLUDE_TASK_FIXPARTITIONTABLE: 'yes',
        EXCLUDE_FILESYSTEMRESIZE_TASKS: 'yes',
      }),
    );
    assert.equal(nothing.boot, false);
    assert.match(nothing.boot ? '' : nothing.why, /^no task would run \(FixPartitionTable: excluded by EXCLUDE_TASK_/);
    assert.deepEqual(helperNeeded('create', host({ CLOUD_INIT: 'yes', EXCLUDE_MOUNTED_TASKS: 'yes' })).boot, false);
  });

  it('DeleteSSHKeys (host keys made on the host) follows the same decision', () => {
    assert.equal(decisionFor('DeleteSSHKeys', host({})).run, true);
    for (const properties of [
      { EXCLUDE_TASK_DELETESSHKEYS: 'yes' },
      { EXCLUDE_MOUNTED_TASKS: 'yes' },
      { CLOUD_INIT: 'yes' },
    ]) {
      assert.equal(decisionFor('DeleteSSHKeys', host(properties)).run, false, JSON.stringify(properties));
    }
    assert.equal(decisionFor('DeleteSSHKeys', { ...host({}), family: 'windows' }).run, false);
  });

  it('with the family unknown a task runs when it would for some family', () => {
    const flag = fc.constantFrom(undefined, 'yes', 'no');
    const properties = fc.record({
      EXCLUDE_MOUNTED_TASKS: flag,
      EXCLUDE_FILESYSTEMRESIZE_TASKS: flag,
      CLOUD_INIT: flag,
      EXCLUDE_TASK_ADDSWAP: flag,
      EXCLUDE_TASK_CHANGEPASSWORD: flag,
      SWAP: fc.constantFrom(undefined, '2:64'),
    });
    const inputs = fc.record({ passwordOrKeys: fc.boolean(), personality: fc.boolean() });
    fc.assert(
      fc.property(properties, inputs, (raw, given) => {
        const p = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)) as ImageProperties;
        for (const task of TASK_SPECS) {
          const anyFamily = OS_FAMILIES.some(
            (family) => decideTask(task, { properties: p, family, inputs: given }).run,
          );
          assert.equal(decideTask(task, { properties: p, family: undefined, inputs: given }).run, anyFamily, task.name);
        }
      }),
    );
  });
});
