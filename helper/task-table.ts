/**
 * The helper's tasks: each task of the table (plan/task-specs.ts: order, attributes,
 * families, inputs, operations, description) with its body. The runner orders and decides
 * by the table; the tests check that the orders honour every after/before.
 */
import { osFamily, type HelperContext } from './context.ts';
import { GuestFs } from './guest-files.ts';
import { adapterFor } from './os/adapter.ts';
import { disableRemoteDesktopConnections, installUnattend } from './os/windows.ts';
import {
  filesystemResizeAfterUmount,
  filesystemResizeMounted,
  filesystemResizeUnmounted,
} from './tasks/filesystems.ts';
import { mountImage, umountImage } from './tasks/mount.ts';
import { initializeDatasource } from './tasks/cloud-init.ts';
import { runCustomTask } from './tasks/custom-task.ts';
import { configureNetwork } from './tasks/network.ts';
import { fixPartitionTable } from './tasks/partitions.ts';
import { enforcePersonality } from './tasks/personality.ts';
import { TASK_SPECS, type TaskDeclaration, type TaskName } from './plan/task-specs.ts';
import { addSwap } from './tasks/swap.ts';

export interface TaskSpec extends TaskDeclaration {
  name: TaskName;
  run(ctx: HelperContext): Promise<void>;
}

const guest = (ctx: HelperContext) => new GuestFs(ctx.target);

/** The body of each task of the table. */
const BODIES: Record<TaskName, (ctx: HelperContext) => Promise<void>> = {
  FixPartitionTable: fixPartitionTable,
  FilesystemResizeUnmounted: filesystemResizeUnmounted,
  MountImage: mountImage,
  InitializeDatasource: initializeDatasource,
  InstallUnattend: (ctx) => installUnattend(ctx, guest(ctx)),
  FilesystemResizeMounted: filesystemResizeMounted,
  AddSwap: addSwap,
  AssignHostname: (ctx) => adapterFor(osFamily(ctx)).assignHostname(ctx, guest(ctx)),
  ChangeMachineId: (ctx) => adapterFor(osFamily(ctx)).changeMachineId(ctx, guest(ctx)),
  ChangePassword: (ctx) => adapterFor(osFamily(ctx)).changePassword(ctx, guest(ctx)),
  ConfigureNetwork: configureNetwork,
  DeleteSSHKeys: (ctx) => adapterFor(osFamily(ctx)).deleteSshKeys(ctx, guest(ctx)),
  SELinuxAutorelabel: (ctx) => adapterFor(osFamily(ctx)).selinuxAutorelabel(ctx, guest(ctx)),
  DisableRemoteDesktopConnections: (ctx) => disableRemoteDesktopConnections(ctx, guest(ctx)),
  EnforcePersonality: enforcePersonality,
  RunCustomTask: runCustomTask,
  UmountImage: umountImage,
  FilesystemResizeAfterUmount: filesystemResizeAfterUmount,
};

export const TASKS: readonly TaskSpec[] = TASK_SPECS.map((spec) => ({ ...spec, run: BODIES[spec.name] }));

/** Problems in the table itself: after/before constraints the orders break, unknown names. */
export function tableProblems(tasks: readonly TaskSpec[] = TASKS): string[] {
  const byName = new Map<string, TaskSpec>(tasks.map((t) => [t.name, t]));
  const problems: string[] = [];
  for (const task of tasks) {
    for (const other of task.runAfter) {
      const o = byName.get(other);
      if (!o) problems.push(`${task.name}: runAfter names unknown task ${other}`);
      else if (o.order >= task.order)
        problems.push(`${task.name} (${task.order}) must run after ${other} (${o.order})`);
    }
    for (const other of task.runBefore) {
      const o = byName.get(other);
      if (!o) problems.push(`${task.name}: runBefore names unknown task ${other}`);
      else if (o.order <= task.order)
        problems.push(`${task.name} (${task.order}) must run before ${other} (${o.order})`);
    }
  }
  return problems;
}
