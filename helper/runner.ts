/**
 * Runs the task table for one deployment: decides which tasks apply (OS family, EXCLUDE_*
 * properties, required inputs), runs them in order and reports task-start / task-end /
 * warning / error on the monitor port.
 */
import type { HelperEvent } from '../src/helper-vm/monitor-protocol.ts';
import type { HelperContext } from './context.ts';
import { decideTask, type Decision, type DecisionInput } from './plan/decide.ts';
import type { OsFamily } from './plan/families.ts';
import type { Operation } from './plan/task-specs.ts';
import { runWithOverride } from './programs/overrides.ts';
import { TASKS, type TaskSpec } from './task-table.ts';

/** The decision for one task of this deployment (plan/decide.ts, which the host asks too). */
export function decide(task: TaskSpec, ctx: Pick<HelperContext, 'properties' | 'config'>): Decision {
  return decideTask(task, decisionInput(ctx));
}

/** What the decision reads of a helper context: properties, the (detected) family, the inputs given. */
function decisionInput(ctx: Pick<HelperContext, 'properties' | 'config'>): DecisionInput {
  const s = ctx.config.secrets;
  return {
    properties: ctx.properties,
    family: (ctx.properties.OSFAMILY as OsFamily | undefined) ?? 'unknown',
    inputs: {
      passwordOrKeys: s.password !== undefined || s.passwordHash !== undefined || s.authKeys !== undefined,
      personality: ctx.config.personality.length > 0 || ctx.config.personalityDisk !== undefined,
    },
  };
}

export interface TaskRunOptions {
  emit(event: HelperEvent): void;
  log(line: string): void;
  /** The operation: only its tasks run (rename: the hostname and the mounts; see the task table). */
  operation: Operation;
}

export async function runTasks(
  ctx: HelperContext,
  options: TaskRunOptions,
  tasks: readonly TaskSpec[] = TASKS,
): Promise<void> {
  const ordered = [...tasks].sort((a, b) => a.order - b.order);
  for (const task of ordered) {
    if (!task.operations.includes(options.operation)) continue;
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
