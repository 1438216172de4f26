/**
 * The SWAP image property and the partition-table changes it asks for, as pure functions:
 * `<partition number>:<size in MB>` carves a swap partition at the end of disk 0 (a logical
 * one, in the existing or a new extended partition, when the number is 5 or more on MBR);
 * a disk letter (b, c, ...) makes that whole instance disk the swap space.
 */
import { EXTENDED_TYPES, lastPartition, type PartitionTable } from './disks.ts';
import { TaskError } from './exec.ts';

export type SwapSpec =
  | { kind: 'partition'; number: number; mib: number }
  | { kind: 'disk'; letter: string; diskIndex: number };

/** Parses SWAP; undefined when it is not set. Errors name the property and the rule. */
export function parseSwapProperty(value: string | undefined): SwapSpec | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const text = value.trim();
  const partition = /^([1-9][0-9]*):([1-9][0-9]*)$/.exec(text);
  if (partition) {
    const number = Number(partition[1]);
    if (number > 128) throw new TaskError(`SWAP: partition number ${number} is above 128`);
    return { kind: 'partition', number, mib: Number(partition[2]) };
  }
  if (/^[b-z]$/.test(text)) return { kind: 'disk', letter: text, diskIndex: text.charCodeAt(0) - 'a'.charCodeAt(0) };
  throw new TaskError('SWAP: must be <partition number>:<size in MB> or a disk letter b-z');
}

export type SwapOperation =
  | { op: 'resize'; number: number; size: number }
  | { op: 'create'; number: number; start: number; size: number; kind: 'swap' | 'extended' };

/**
 * The operations, in order, that grow the last partition up to a swap partition of the
 * requested size at the end of the disk (1 MiB aligned). Refuses what the table cannot hold.
 */
export function planSwapPartition(table: PartitionTable, spec: { number: number; mib: number }): SwapOperation[] {
  const align = Math.max(1, Math.floor(1048576 / table.sectorSize));
  const swapSectors = spec.mib * align;
  const lastUsable = table.type === 'gpt' ? table.sectors - 34 : table.sectors - 1;
  const swapStart = Math.floor((lastUsable + 1 - swapSectors) / align) * align;
  const last = lastPartition(table);
  if (!last) throw new TaskError('SWAP: the image has no partition to put the swap partition after');
  if (table.partitions.some((p) => p.number === spec.number))
    throw new TaskError(`SWAP: partition ${spec.number} already exists in the image`);
  const room = (end: number, label: string): number => {
    const size = end - last.start;
    if (size < last.size)
      throw new TaskError(
        `SWAP: the disk is too small for a ${spec.mib} MB swap partition after ${label} ${last.number}`,
      );
    return size;
  };
  if (table.type === 'gpt') {
    return [
      { op: 'resize', number: last.number, size: room(swapStart, 'partition') },
      { op: 'create', number: spec.number, start: swapStart, size: swapSectors, kind: 'swap' },
    ];
  }
  const extended = table.partitions.find((p) => EXTENDED_TYPES.has(p.type));
  const primaries = table.partitions.filter((p) => p.number <= 4);
  const lastIsLogical = last.number >= 5;
  if (spec.number <= 4) {
    if (lastIsLogical)
      throw new TaskError(
        `SWAP: a primary partition ${spec.number} cannot follow the extended partition; use a logical number (5 or more)`,
      );
    if (primaries.length >= 4) throw new TaskError('SWAP: the MBR already has four primary partitions');
    return [
      { op: 'resize', number: last.number, size: room(swapStart, 'partition') },
      { op: 'create', number: spec.number, start: swapStart, size: swapSectors, kind: 'swap' },
    ];
  }
  // Logical: its extended boot record takes the MiB in front of it.
  const logicals = table.partitions.filter((p) => p.number >= 5);
  const nextLogical = Math.max(4, ...logicals.map((p) => p.number)) + 1;
  if (spec.number !== nextLogical)
    throw new TaskError(`SWAP: the next logical partition of this image is ${nextLogical}, not ${spec.number}`);
  if (extended && lastIsLogical) {
    return [
      { op: 'resize', number: extended.number, size: lastUsable - extended.start + 1 },
      { op: 'resize', number: last.number, size: room(swapStart - align, 'logical partition') },
      { op: 'create', number: spec.number, start: swapStart, size: swapSectors, kind: 'swap' },
    ];
  }
  if (extended)
    throw new TaskError('SWAP: the extended partition is not the last partition: no room for a logical swap partition');
  const freePrimary = [1, 2, 3, 4].find((n) => !primaries.some((p) => p.number === n));
  if (freePrimary === undefined)
    throw new TaskError('SWAP: the MBR has no free primary slot for an extended partition');
  return [
    { op: 'resize', number: last.number, size: room(swapStart - align, 'partition') },
    {
      op: 'create',
      number: freePrimary,
      start: swapStart - align,
      size: lastUsable - (swapStart - align) + 1,
      kind: 'extended',
    },
    { op: 'create', number: spec.number, start: swapStart, size: swapSectors, kind: 'swap' },
  ];
}
