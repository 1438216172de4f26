/**
 * In-image task overrides (upstream's check_if_overwritten): with
 * ALLOW_MOUNTED_TASK_OVERWRITING set, an executable /root/snf-image/helper/overwrite_task_<Task>
 * (name matched case-insensitively) in the mounted guest replaces an overwritable task.
 * It runs chrooted into the guest (programs/guest-program.ts) with upstream's task environment
 * (programs/task-env.ts; SNF_IMAGE_TARGET is "/", no disks, no secrets) and `pre-exec`: exit 0 means
 * it did the task's work (the built-in task is skipped); exit 101 means "run the built-in
 * task", after which it runs again with `post-exec`; any other exit fails the task.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { isYes, type HelperContext } from '../context.ts';
import { TaskError } from '../exec.ts';
import { resolveInGuest } from '../guest-path.ts';
import { runInGuest } from './guest-program.ts';
import { taskEnv } from './task-env.ts';

const OVERRIDE_DIR = '/root/snf-image/helper';
/** pre-exec exit code asking for the built-in task (then post-exec). */
const RUN_BUILTIN = 101;

/** Guest path of the executable overriding `task`, if the image has one. */
export function findOverride(target: string, task: string): string | undefined {
  const dir = resolveInGuest(target, OVERRIDE_DIR);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const wanted = `overwrite_task_${task}`.toLowerCase();
  for (const name of names.filter((n) => n.toLowerCase() === wanted).sort()) {
    const guestPath = `${OVERRIDE_DIR}/${name}`;
    try {
      const st = lstatSync(resolveInGuest(target, guestPath));
      if (st.isFile() && (st.mode & 0o111) !== 0) return guestPath;
    } catch {
      // a dangling link: no override
    }
  }
  return undefined;
}

export interface OverridableTask {
  name: string;
  attributes: { overwritable: boolean };
  run(ctx: HelperContext): Promise<void>;
}

/** Runs the task, through the image's override when one applies. */
export async function runWithOverride(ctx: HelperContext, task: OverridableTask): Promise<void> {
  const allowed =
    task.attributes.overwritable && isYes(ctx.properties.ALLOW_MOUNTED_TASK_OVERWRITING) && ctx.mounts.length > 0;
  const program = allowed ? findOverride(ctx.target, task.name) : undefined;
  if (!program) return task.run(ctx);
  ctx.warn(`Task ${task.name} is overridden by the image's ${program}`);
  // Chrooted: the guest root is "/" (upstream ran it unchrooted with SNF_IMAGE_TARGET the mount point).
  const env = { ...taskEnv(ctx, { target: '/', disks: false }), SNF_IMAGE_TASK: task.name };
  const pre = await runInGuest(ctx.target, program, ['pre-exec'], { env });
  if (pre.code === 0) {
    ctx.info(`task ${task.name} done by ${program} (built-in task not run)`);
    return;
  }
  if (pre.code !== RUN_BUILTIN)
    throw new TaskError(`Task ${task.name}: the image's override ${program} pre-exec failed (exit ${pre.code})`);
  await task.run(ctx);
  const post = await runInGuest(ctx.target, program, ['post-exec'], { env });
  if (post.code !== 0)
    throw new TaskError(`Task ${task.name}: the image's override ${program} post-exec failed (exit ${post.code})`);
  ctx.info(`task ${task.name} ran between ${program} pre-exec and post-exec`);
}
