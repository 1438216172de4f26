/**
 * BSD fstab device names → what the helper sees: a disklabel letter (OpenBSD/NetBSD
 * /dev/wd0a, /dev/sd0a, OpenBSD DUID form 0123456789abcdef.a, FreeBSD /dev/ada0s1a) or a
 * GPT partition number (FreeBSD /dev/ada0p2), and a letter → Linux partition node by start
 * sector (the kernel's own BSD-label partitions, /dev/vdb5…, are matched, never guessed).
 */
import { TaskError } from '../exec.ts';

export type BsdDevice = { kind: 'letter'; letter: string } | { kind: 'gpt'; number: number };

export class BsdDeviceError extends TaskError {}

/** What an fstab source names; `duid` is the image's OpenBSD DUID ('' when none). */
export function parseBsdDevice(source: string, duid: string): BsdDevice {
  const byDuid = /^([0-9a-f]{16})\.([a-p])$/i.exec(source);
  if (byDuid) {
    if (byDuid[1]?.toLowerCase() !== duid)
      throw new BsdDeviceError(`fstab names disk ${byDuid[1]}, not this image's disklabel UID ${duid || '(none)'}`);
    return { kind: 'letter', letter: byDuid[2]?.toLowerCase() as string };
  }
  const sliced = /^\/dev\/r?[a-z]+\d+s[1-4]([a-h])$/.exec(source);
  if (sliced) return { kind: 'letter', letter: sliced[1] as string };
  const gpt = /^\/dev\/(?:ada|da|vtbd|nvd|nda|ad)\d+p(\d+)$/.exec(source);
  if (gpt) return { kind: 'gpt', number: Number(gpt[1]) };
  const labelled = /^\/dev\/r?(?:wd|sd|ld|vnd|vtbd|ada|da)\d+([a-p])$/.exec(source);
  if (labelled) return { kind: 'letter', letter: labelled[1] as string };
  if (/^\/dev\/(gpt|ufs|gptid|ufsid|diskid|label)\//.test(source))
    throw new BsdDeviceError(`fstab source ${source}: FreeBSD GEOM labels are not supported (use /dev/<disk>p<N>)`);
  throw new BsdDeviceError(`fstab source ${source} is not a BSD disk partition name this helper can map`);
}

export interface KernelPartition {
  node: string;
  start: number;
  size: number;
}

/** The Linux partition node that starts where label partition `letter` starts. */
export function nodeForStart(
  partitions: readonly KernelPartition[],
  start: number,
  size: number,
  what: string,
): string {
  const match =
    partitions.find((p) => p.start === start && p.size === size) ?? partitions.find((p) => p.start === start);
  if (!match) throw new BsdDeviceError(`${what} (sector ${start}) has no partition device in the helper`);
  return match.node;
}
