/**
 * Disks and partitions as the helper sees them: instance disks found by their virtio serial
 * number (never by guessing letters), partition tables read with sfdisk --json.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { run, TaskError } from './exec.ts';

export function findDiskBySerial(serial: string, sysBlock = '/sys/block'): string {
  for (const name of readdirSync(sysBlock)) {
    const file = `${sysBlock}/${name}/serial`;
    if (existsSync(file) && readFileSync(file, 'utf8').trim() === serial) return `/dev/${name}`;
  }
  throw new TaskError(`no disk with serial ${serial} is attached to the helper VM`);
}

/** A block device's size in 512-byte sectors, from sysfs (no program to start). */
function diskSectors(device: string, sysClassBlock = '/sys/class/block'): number {
  const file = `${sysClassBlock}/${device.replace(/^\/dev\//, '')}/size`;
  const sectors = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN;
  if (!Number.isSafeInteger(sectors) || sectors <= 0)
    throw new TaskError(`cannot read the size of ${device} from ${file}`);
  return sectors;
}

/** The filesystem (or LVM2_member, swap, ...) blkid finds on a device; '' when none. */
export async function filesystemType(node: string): Promise<string> {
  const r = await run('blkid', ['-o', 'value', '-s', 'TYPE', node], { allowFailure: true });
  return r.stdout.trim();
}

type TableType = 'dos' | 'gpt';

export interface Partition {
  number: number;
  node: string;
  start: number;
  size: number;
  type: string;
}

export interface PartitionTable {
  device: string;
  type: TableType;
  sectorSize: number;
  /** Disk size in sectors. */
  sectors: number;
  partitions: Partition[];
}

interface SfdiskJson {
  partitiontable?: {
    label?: string;
    device?: string;
    sectorsize?: number;
    partitions?: unknown;
  };
}

export function partitionNode(device: string, number: number): string {
  return /\d$/.test(device) ? `${device}p${number}` : `${device}${number}`;
}

export async function readPartitionTable(device: string): Promise<PartitionTable> {
  const r = await run('sfdisk', ['--json', device], { allowFailure: true });
  if (r.code !== 0) throw new TaskError('Unable to read partition table. The image seems corrupted.');
  return parseSfdiskJson(r.stdout, device, () => diskSectors(device));
}

const unreadable = (why: string) => new TaskError(`Unable to read partition table: sfdisk --json ${why}`);

/** One partition as sfdisk describes it; anything else is refused (sfdisk reads a hostile table). */
function sfdiskPartition(p: unknown, i: number): Partition {
  if (typeof p !== 'object' || p === null) throw unreadable(`partition ${i + 1} is not an object`);
  const { node, start, size, type } = p as Record<string, unknown>;
  const sector = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (typeof node !== 'string') throw unreadable(`partition ${i + 1} has no node`);
  if (!sector(start)) throw unreadable(`partition ${i + 1} has no start (a whole number of sectors)`);
  if (!sector(size)) throw unreadable(`partition ${i + 1} has no size (a whole number of sectors)`);
  if (typeof type !== 'string') throw unreadable(`partition ${i + 1} has no type`);
  const m = /(\d+)$/.exec(node);
  return { number: Number(m?.[1] ?? 0), node, start: start as number, size: size as number, type: type.toLowerCase() };
}

/** sfdisk --json's description of the image's partition table; `sectors` is the disk's size. */
export function parseSfdiskJson(stdout: string, device: string, sectors: () => number): PartitionTable {
  let json: SfdiskJson;
  try {
    json = JSON.parse(stdout) as SfdiskJson;
  } catch {
    throw unreadable('gave no JSON');
  }
  const table = typeof json === 'object' && json !== null ? json.partitiontable : undefined;
  if (!table || (table.label !== 'dos' && table.label !== 'gpt'))
    throw new TaskError(`Unsupported partition table type '${String(table?.label ?? 'none')}'`);
  const size = sectors();
  const list = table.partitions ?? [];
  if (!Array.isArray(list)) throw unreadable('gave partitions that are not a list');
  const partitions = list.map(sfdiskPartition);
  return { device, type: table.label, sectorSize: table.sectorsize ?? 512, sectors: size, partitions };
}

/** MBR extended-partition types. */
export const EXTENDED_TYPES = new Set(['5', 'f', '85']);

/** The partition to grow: the last one; with logicals inside a last extended, the last logical. */
export function lastPartition(table: PartitionTable): Partition | undefined {
  const sorted = [...table.partitions].sort((a, b) => a.start - b.start);
  const last = sorted.at(-1);
  if (!last) return undefined;
  if (table.type === 'dos' && EXTENDED_TYPES.has(last.type)) {
    const logicals = table.partitions.filter((p) => p.number >= 5).sort((a, b) => a.start - b.start);
    return logicals.at(-1);
  }
  return last;
}
