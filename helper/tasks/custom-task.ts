/**
 * RunCustomTask: the base64 program of the CUSTOM_TASK image property, run in the helper VM
 * (as upstream: not chrooted; it comes from the administrator's properties, not from the
 * image) with the guest mounted at SNF_IMAGE_TARGET (and TARGET), upstream's task
 * environment without secrets (programs/task-env.ts),
 * and a time limit, in the sandbox (programs/sandbox.ts): uid 0 with the capabilities to
 * edit any guest file, chroot into it and use the instance disks (DEV_<i>), nothing else of
 * the helper (no config, serial ports, other devices, mounts).
 * The program's bytes go straight into the sandbox's private /tmp.
 */
import type { HelperContext } from '../context.ts';
import { TaskError } from '../exec.ts';
import { GUEST_PROGRAM_TIMEOUT_S } from '../programs/guest-program.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { runSandboxed, type BlockDevice } from '../programs/sandbox.ts';
import { taskEnv } from '../programs/task-env.ts';

const PROGRAM_NAME = 'snf-custom-task';

/** The program's environment: upstream's task variables (programs/task-env.ts), no secrets. */
export function customTaskEnv(
  ctx: Pick<HelperContext, 'target' | 'disks' | 'properties' | 'config' | 'resizedPartition'>,
): Record<string, string> {
  return taskEnv(ctx, { target: ctx.target, disks: true });
}

export function decodeCustomTask(value: string): Buffer {
  const compact = value.replace(/\s+/g, '');
  if (compact === '' || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) throw new TaskError('CUSTOM_TASK: must be base64');
  return Buffer.from(compact, 'base64');
}

/** The instance disks and their partitions as sysfs names them (vda, vda1, ...). */
export function instanceBlockDevices(disks: readonly string[], sysClassBlock = '/sys/class/block'): BlockDevice[] {
  const devices: BlockDevice[] = [];
  const majorMinor = (name: string) => readFileSync(`${sysClassBlock}/${name}/dev`, 'utf8').trim();
  for (const disk of disks) {
    const name = basename(disk);
    devices.push({ name, majorMinor: majorMinor(name) });
    for (const entry of readdirSync(`${sysClassBlock}/${name}`)) {
      if (!entry.startsWith(name)) continue;
      try {
        readFileSync(`${sysClassBlock}/${name}/${entry}/partition`);
      } catch {
        continue;
      }
      devices.push({ name: entry, majorMinor: majorMinor(`${name}/${entry}`) });
    }
  }
  return devices;
}

export async function runCustomTask(ctx: HelperContext): Promise<void> {
  const content = decodeCustomTask(ctx.properties.CUSTOM_TASK ?? '');
  const administrator = { devices: instanceBlockDevices(ctx.disks) };
  const r = await runSandboxed({ name: PROGRAM_NAME, content }, [], {
    target: ctx.target,
    env: customTaskEnv(ctx),
    timeoutSeconds: GUEST_PROGRAM_TIMEOUT_S,
    label: 'CUSTOM_TASK',
    administrator,
  });
  if (r.code !== 0) {
    const last = (r.stderr.trim() || r.stdout.trim()).split('\n').pop() ?? '';
    throw new TaskError(`CUSTOM_TASK failed (exit ${r.code})${last ? `: ${last}` : ''}`);
  }
  const last = r.stdout.trim().split('\n').pop();
  ctx.info(`CUSTOM_TASK finished${last ? `: ${last}` : ''}`);
}
