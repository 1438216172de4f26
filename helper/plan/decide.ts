/**
 * The one decision whether a task runs, from the image properties, the OS family and the
 * inputs given. The helper asks it before each task; the host asks it before booting the
 * helper (create: is there anything to do, does DeleteSSHKeys need host keys; rename: does
 * the hostname task run at all). Pure: no I/O.
 */
import { isYes } from '../../src/util/flags.ts';
import type { OsFamily } from './families.ts';
import { excludeTaskProperty, type ImageProperties } from './properties.ts';
import { TASK_SPECS, type Operation, type TaskDeclaration, type TaskName } from './task-specs.ts';

export type Decision = { run: true } | { run: false; why: string; warn: boolean };

/** The inputs (OS parameters) tasks may need, by whether they were given. */
export interface TaskInputs {
  /** img_passwd, img_passwd_hash or auth_keys. */
  passwordOrKeys: boolean;
  /** img_personality (files, on the floppy or an extra disk). */
  personality: boolean;
}

export interface DecisionInput {
  properties: ImageProperties;
  /**
   * The OS family; 'unknown' when it could not be told. undefined on the host before the
   * helper has detected it: then a task runs for whichever family the image turns out to be.
   */
  family: OsFamily | 'unknown' | undefined;
  inputs: TaskInputs;
}

type DecidedTask = Pick<TaskDeclaration, 'attributes' | 'families' | 'requires'> & { name: TaskName };

export function decideTask(task: DecidedTask, input: DecisionInput): Decision {
  const p = input.properties;
  const family = input.family;
  if (family !== undefined && (family === 'unknown' || !task.families.includes(family)))
    return { run: false, why: `not for OSFAMILY ${family}`, warn: false };
  if (task.attributes.excludable && isYes(p[excludeTaskProperty(task.name)]))
    return { run: false, why: `excluded by EXCLUDE_TASK_${task.name}`, warn: true };
  if (task.attributes.fsResize && isYes(p.EXCLUDE_FILESYSTEMRESIZE_TASKS))
    return { run: false, why: 'excluded by EXCLUDE_FILESYSTEMRESIZE_TASKS', warn: true };
  if (task.attributes.mounted && isYes(p.EXCLUDE_MOUNTED_TASKS))
    return { run: false, why: 'excluded by EXCLUDE_MOUNTED_TASKS', warn: true };
  if (task.attributes.cloudInitExcludable && isYes(p.CLOUD_INIT))
    return { run: false, why: 'not run in cloud-init mode', warn: false };
  if (task.requires.includes('password-or-keys') && !input.inputs.passwordOrKeys)
    return { run: false, why: 'no img_passwd, img_passwd_hash or auth_keys given', warn: false };
  if (task.requires.includes('personality') && !input.inputs.personality)
    return { run: false, why: 'no img_personality given', warn: false };
  if (task.requires.includes('swap') && !p.SWAP) return { run: false, why: 'no SWAP property', warn: false };
  if (task.requires.includes('custom-task') && !p.CUSTOM_TASK)
    return { run: false, why: 'no CUSTOM_TASK property', warn: false };
  if (task.requires.includes('cloud-init') && !isYes(p.CLOUD_INIT))
    return { run: false, why: 'CLOUD_INIT is not set', warn: false };
  return { run: true };
}

export interface PlannedTask {
  name: TaskName;
  decision: Decision;
}

/** Every task `operation` runs, in table order, with its decision. */
export function planTasks(operation: Operation, input: DecisionInput): PlannedTask[] {
  // In cloud-init mode the deployed guest's hostname is cloud-init's (its seed names it):
  // a rename changes nothing inside the guest, as the seed would restore the old name.
  const cloudInitRename = operation === 'rename' && isYes(input.properties.CLOUD_INIT);
  return TASK_SPECS.filter((task) => (task.operations as readonly Operation[]).includes(operation)).map((task) => ({
    name: task.name,
    decision: cloudInitRename
      ? { run: false, why: 'not run on rename in cloud-init mode', warn: false }
      : decideTask(task, input),
  }));
}

export type HelperVerdict = { boot: true } | { boot: false; why: string };

/**
 * Whether `operation` needs the helper VM: EXCLUDE_ALL_TASKS, or no task that runs except
 * the mounts (bracket tasks serve the others), means no. `why` names the reasons.
 */
export function helperNeeded(operation: Operation, input: DecisionInput): HelperVerdict {
  if (isYes(input.properties.EXCLUDE_ALL_TASKS)) return { boot: false, why: 'EXCLUDE_ALL_TASKS is set' };
  const bracket = new Set<string>(TASK_SPECS.filter((t) => 'bracket' in t).map((t) => t.name));
  const planned = planTasks(operation, input).filter((t) => !bracket.has(t.name));
  if (planned.some((t) => t.decision.run)) return { boot: true };
  const reasons = planned.map((t) => `${t.name}: ${t.decision.run ? 'runs' : t.decision.why}`);
  return { boot: false, why: `no task would run (${reasons.join('; ')})` };
}

/** The decision for one task by name (the host's question about a single task). */
export function decisionFor(name: TaskName, input: DecisionInput): Decision {
  const task = TASK_SPECS.find((t) => t.name === name);
  if (task === undefined) throw new Error(`unknown task ${name}`);
  return decideTask(task, input);
}
