/**
 * FixPartitionTable: grow the last partition (a logical one inside a last extended
 * partition included) to the end of the disk, on MBR and GPT (whose backup header moves to
 * the new end first); with SWAP=<n>:<MB>, up to a swap partition carved at the disk's end.
 */
import { EXTENDED_TYPES, lastPartition, readPartitionTable, type PartitionTable } from '../disks.ts';
import { run, TaskError } from '../exec.ts';
import { osFamily, type HelperContext } from '../context.ts';
import { isBsdFamily } from '../bsd/partition-types.ts';
import { fixBsdPartitionTable } from '../os/bsd.ts';
import { parseSwapProperty, planSwapPartition, type SwapOperation } from '../swap-plan.ts';

const SFDISK = ['--no-reread', '--no-tell-kernel', '-q'];

async function applySwapOperation(table: PartitionTable, op: SwapOperation): Promise<void> {
  if (op.op === 'resize') {
    await run('sfdisk', [...SFDISK, '-N', String(op.number), table.device], { input: `, ${op.size}\n` });
  } else if (table.type === 'gpt') {
    await run('sgdisk', [
      '-n',
      `${op.number}:${op.start}:${op.start + op.size - 1}`,
      '-t',
      `${op.number}:8200`,
      '-c',
      `${op.number}:swap`,
      table.device,
    ]);
  } else {
    await run('sfdisk', [...SFDISK, '-N', String(op.number), table.device], {
      input: `start=${op.start}, size=${op.size}, type=${op.kind === 'swap' ? '82' : '5'}\n`,
    });
  }
}

/** Grows partition `number` as far as the table allows (sfdisk's "+": all free space after it). */
async function growToEnd(device: string, number: number): Promise<void> {
  await run('sfdisk', [...SFDISK, '-N', String(number), device], { input: ', +\n' });
}

export async function fixPartitionTable(ctx: HelperContext): Promise<void> {
  if (isBsdFamily(osFamily(ctx))) return fixBsdPartitionTable(ctx);
  let table = await readPartitionTable(ctx.disk);
  if (table.type === 'gpt') {
    await run('sgdisk', ['-e', ctx.disk]);
    table = await readPartitionTable(ctx.disk);
  }
  const last = lastPartition(table);
  if (!last) throw new TaskError('The image has no partitions to grow');
  const swap = parseSwapProperty(ctx.properties.SWAP);
  if (swap?.kind === 'partition') {
    for (const op of planSwapPartition(table, swap)) await applySwapOperation(table, op);
    ctx.info(
      `grew partition ${last.number} up to a ${swap.mib} MB swap partition ${swap.number} at the end of the disk`,
    );
    await settle(ctx.disk);
    ctx.resizedPartition = last.node;
    return;
  }
  // GPT keeps 33 sectors for its backup table; MBR may use the disk to its last sector.
  const lastUsable = table.type === 'gpt' ? table.sectors - 34 : table.sectors - 1;
  const end = last.start + last.size - 1;
  if (end >= lastUsable) {
    ctx.info(`partition ${last.number} already ends at the end of the disk`);
  } else {
    if (table.type === 'dos' && last.number >= 5) {
      const extended = table.partitions.find((p) => EXTENDED_TYPES.has(p.type));
      if (!extended) throw new TaskError('logical partition without an extended partition');
      await growToEnd(ctx.disk, extended.number);
    }
    await growToEnd(ctx.disk, last.number);
    const grown = (await readPartitionTable(ctx.disk)).partitions.find((p) => p.number === last.number);
    ctx.info(`grew partition ${last.number} from ${last.size} to ${grown?.size ?? '?'} sectors`);
  }
  await settle(ctx.disk);
  ctx.resizedPartition = last.node;
}

/** The kernel learns the new table: partx -u for changed partitions, -a for new ones. */
async function settle(disk: string): Promise<void> {
  await run('partx', ['-u', disk], { allowFailure: true });
  await run('partx', ['-a', disk], { allowFailure: true });
  await run('udevadm', ['settle'], { allowFailure: true });
}
