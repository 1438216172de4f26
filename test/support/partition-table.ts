/** The partition table of a disk image file or device, as `sfdisk --json` reports it (tests only). */
import { execFileSync } from 'node:child_process';

export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
}

export interface SfdiskTable {
  sectorsize?: number;
  partitions: SfdiskPartition[];
}

export function partitionTable(disk: string): SfdiskTable {
  return (JSON.parse(execFileSync('sfdisk', ['--json', disk], { encoding: 'utf8' })) as { partitiontable: SfdiskTable })
    .partitiontable;
}

export function diskPartitions(disk: string): SfdiskPartition[] {
  return partitionTable(disk).partitions;
}
