/**
 * RunCustomTask: the base64 program of the CUSTOM_TASK image property, run in the helper VM
 * (as upstream: not chrooted; it comes from the administrator's properties, not from the
 * image) with the guest mounted at TARGET, the upstream task environment without secrets,
 * and a time limit.
 */
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import type { HelperContext } from '../context.ts';
import { run, TaskError } from '../exec.ts';
import { GUEST_PROGRAM_TIMEOUT_S } from '../programs/guest-program.ts';

const PROGRAM = '/run/snf-custom-task';
/** Properties that are not passed on as PROPERTY_<NAME>. */
const WITHHELD = new Set(['CUSTOM_TASK']);

export function decodeCustomTask(value: string): Buffer {
  const compact = value.replace(/\s+/g, '');
  if (compact === '' || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) throw new TaskError('CUSTOM_TASK: must be base64');
  return Buffer.from(compact, 'base64');
}

/** The program's environment: upstream's task variables, no secrets. */
export function customTaskEnv(ctx: Pick<HelperContext, 'target' | 'disks' | 'properties' | 'config' | 'resizedPartition'>): Record<string, string> {
  const env: Record<string, string> = {
    TARGET: ctx.target,
    HOSTNAME: ctx.config.hostname,
    DEV_COUNT: String(ctx.disks.length),
    DEV: ctx.disks.join(' '),
  };
  ctx.disks.forEach((d, i) => (env[`DEV_${i}`] = d));
  if (ctx.resizedPartition) env.RESIZE_PART = ctx.resizedPartition;
  for (const [name, value] of Object.entries(ctx.properties)) if (!WITHHELD.has(name)) env[`PROPERTY_${name}`] = value;
  return env;
}

export async function runCustomTask(ctx: HelperContext): Promise<void> {
  const program = decodeCustomTask(ctx.properties.CUSTOM_TASK ?? '');
  writeFileSync(PROGRAM, program, { mode: 0o700 });
  chmodSync(PROGRAM, 0o700);
  try {
    const r = await run(PROGRAM, [], { env: customTaskEnv(ctx), timeoutSeconds: GUEST_PROGRAM_TIMEOUT_S, label: 'CUSTOM_TASK', cwd: ctx.target });
    const last = r.stdout.trim().split('\n').pop();
    ctx.info(`CUSTOM_TASK finished${last ? `: ${last}` : ''}`);
  } finally {
    rmSync(PROGRAM, { force: true });
  }
}
