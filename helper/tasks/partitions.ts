/**
 * FixPartitionTable: grow the last partition (a logical one inside a last extended
 * partition included) to the end of the disk, on MBR and GPT (whose backup header moves to
 * the new end first).
 */
import { EXTENDED_TYPES, lastPartition, readPartitionTable } from '../disks.ts';
import { run, TaskError } from '../exec.ts';
import { osFamily, type HelperContext } from '../context.ts';
import { isBsdFamily } from '../bsd/partition-types.ts';
import { fixBsdPartitionTable } from '../os/bsd.ts';

/** Grows partition `number` as far as the table allows (sfdisk's "+": all free space after it). */
async function growToEnd(device: string, number: number): Promise<void> {
  await run('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', '-N', String(number), device], { input: ', +\n' });
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
  await run('partx', ['-u', ctx.disk], { allowFailure: true });
  await run('udevadm', ['settle'], { allowFailure: true });
  ctx.resizedPartition = last.node;
}
