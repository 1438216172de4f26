/**
 * Runs the task table for one deployment: decides which tasks apply (OS family, EXCLUDE_*
 * properties, required inputs), runs them in order and reports task-start / task-end /
 * warning / error on the monitor port.
 */
import type { HelperEvent } from '../src/helper-vm/monitor-protocol.ts';
import { isYes, type HelperContext } from './context.ts';
import { runWithOverride } from './programs/overrides.ts';
import { TASKS, type TaskSpec } from './task-table.ts';

export type Decision = { run: true } | { run: false; why: string; warn: boolean };

export function decide(task: TaskSpec, ctx: Pick<HelperContext, 'properties' | 'config'>): Decision {
  const p = ctx.properties;
  const family = p.OSFAMILY as TaskSpec['families'][number] | undefined;
  if (!family || !task.families.includes(family))
    return { run: false, why: `not for OSFAMILY ${family ?? 'unknown'}`, warn: false };
  if (task.attributes.excludable && isYes(p[`EXCLUDE_TASK_${task.name.toUpperCase()}`]))
    return { run: false, why: `excluded by EXCLUDE_TASK_${task.name}`, warn: true };
  if (task.attributes.fsResize && isYes(p.EXCLUDE_FILESYSTEMRESIZE_TASKS))
    return { run: false, why: 'excluded by EXCLUDE_FILESYSTEMRESIZE_TASKS', warn: true };
  if (task.attributes.mounted && isYes(p.EXCLUDE_MOUNTED_TASKS))
    return { run: false, why: 'excluded by EXCLUDE_MOUNTED_TASKS', warn: true };
  if (task.attributes.cloudInitExcludable && isYes(p.CLOUD_INIT))
    return { run: false, why: 'not run in cloud-init mode', warn: false };
  const s = ctx.config.secrets;
  if (
    task.requires.includes('password-or-keys') &&
    s.password === undefined &&
    s.passwordHash === undefined &&
    s.authKeys === undefined
  )
    return { run: false, why: 'no img_passwd, img_passwd_hash or auth_keys given', warn: false };
  if (task.requires.includes('personality') && ctx.config.personality.length === 0 && !ctx.config.personalityDisk)
    return { run: false, why: 'no img_personality given', warn: false };
  if (task.requires.includes('swap') && !p.SWAP) return { run: false, why: 'no SWAP property', warn: false };
  if (task.requires.includes('custom-task') && !p.CUSTOM_TASK)
    return { run: false, why: 'no CUSTOM_TASK property', warn: false };
  if (task.requires.includes('cloud-init') && !isYes(p.CLOUD_INIT))
    return { run: false, why: 'CLOUD_INIT is not set', warn: false };
  return { run: true };
}

export interface TaskRunOptions {
  emit(event: HelperEvent): void;
  log(line: string): void;
  /** Limits the run to these tasks (rename runs only AssignHostname and the mounts). */
  only?: readonly string[];
}

export async function runTasks(
  ctx: HelperContext,
  options: TaskRunOptions,
  tasks: readonly TaskSpec[] = TASKS,
): Promise<void> {
  const ordered = [...tasks].sort((a, b) => a.order - b.order);
  for (const task of ordered) {
    if (options.only && !options.only.includes(task.name)) continue;
    const decision = decide(task, ctx);
    if (!decision.run) {
      options.log(`task ${task.name} skipped: ${decision.why}`);
      if (decision.warn) options.emit({ kind: 'warning', message: `Task ${task.name} skipped: ${decision.why}` });
      continue;
    }
    options.emit({ kind: 'task-start', task: task.name });
    const started = Date.now();
    options.log(`task ${task.name} started`);
    await runWithOverride(ctx, task);
    options.log(`task ${task.name} finished in ${((Date.now() - started) / 1000).toFixed(2)} s`);
    options.emit({ kind: 'task-end', task: task.name });
  }
}
