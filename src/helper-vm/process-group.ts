/**
 * A process group (the helper's QEMU with its timeout(1) wrapper): signal all of it, and
 * wait until none of it lives. A member counts as gone once it is a zombie: it has closed
 * every file (the instance disks) and can do nothing more.
 */
import { readdirSync, readFileSync } from 'node:fs';

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Nobody left in the group.
  }
}

/** Pids of the group's members that are not zombies. */
function liveMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue;
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') out.push(Number(name));
  }
  return out;
}

/** SIGKILLs the group until no member lives; false if one still does after `limitMs`. */
export async function killGroupAndWait(pgid: number, limitMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    signalGroup(pgid, 'SIGKILL');
    if (liveMembers(pgid).length === 0) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
