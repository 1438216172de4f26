/**
 * AddSwap: mkswap on the swap partition FixPartitionTable carved (SWAP=<n>:<MB>) or on a
 * whole instance disk (SWAP=<letter>), and an fstab entry for it by UUID.
 */
import { existsSync } from 'node:fs';
import { isYes, type HelperContext } from '../context.ts';
import { partitionNode } from '../disks.ts';
import { run, TaskError } from '../exec.ts';
import { GuestFs } from '../guest-files.ts';
import { parseSwapProperty } from '../swap-plan.ts';

/** fstab with a swap line for UUID appended, unless one is already there. */
export function fstabWithSwap(fstab: string, uuid: string): string {
  if (fstab.split('\n').some((l) => l.trim().split(/\s+/)[0] === `UUID=${uuid}`)) return fstab;
  return `${fstab.replace(/\n?$/, '\n')}UUID=${uuid}\tnone\tswap\tsw\t0\t0\n`;
}

async function swapDevice(ctx: HelperContext): Promise<string | undefined> {
  const spec = parseSwapProperty(ctx.properties.SWAP);
  if (!spec) return undefined;
  if (spec.kind === 'disk') {
    const device = ctx.disks[spec.diskIndex];
    if (!device)
      throw new TaskError(
        `SWAP=${spec.letter} names instance disk ${spec.diskIndex}, but the instance has ${ctx.disks.length} disk(s)`,
      );
    return device;
  }
  if (isYes(ctx.properties.CLOUD_INIT)) {
    ctx.info('cloud-init mode: the swap partition is left to cloud-init (a swap file, see the seed)');
    return undefined;
  }
  const node = partitionNode(ctx.disk, spec.number);
  if (!existsSync(node))
    throw new TaskError(
      `SWAP names partition ${spec.number}, but ${node} does not exist (FixPartitionTable did not create it)`,
    );
  return node;
}

export async function addSwap(ctx: HelperContext): Promise<void> {
  const device = await swapDevice(ctx);
  if (!device) return;
  await run('mkswap', ['-f', device]);
  const uuid = (await run('blkid', ['-p', '-s', 'UUID', '-o', 'value', device])).stdout.trim();
  if (!/^[0-9a-f-]{36}$/i.test(uuid)) throw new TaskError(`mkswap left no UUID on ${device}`);
  const fs = new GuestFs(ctx.target);
  fs.write('/etc/fstab', fstabWithSwap(fs.readOr('/etc/fstab', ''), uuid));
  ctx.info(`swap space on ${device} (UUID=${uuid}) added to /etc/fstab`);
}
