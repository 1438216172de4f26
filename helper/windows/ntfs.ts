/**
 * NTFS in the helper: mounted with ntfs-3g (FUSE) as upstream does (lowntfs-3g,
 * ignore_case, windows_names, norecover, retried without norecover; always nosuid, nodev,
 * noexec), unmounted only when
 * the ntfs-3g process has written everything; hibernated and Fast Startup volumes refused
 * with the reason; the offline resize (ntfsresize) of a clean volume.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { run, TaskError } from '../exec.ts';

/** ntfs-3g's exit status for a hibernated volume (or one left by Fast Startup). */
const NTFS_VOLUME_HIBERNATED = 14;
const NTFS_VOLUME_UNCLEAN_UNMOUNT = 15;

const HIBERNATED_HELP =
  'Windows was hibernated or shut down with Fast Startup when the image was taken; boot it, run "powercfg /h off" (or disable Fast Startup), shut down and take the image again';

export class NtfsHibernatedError extends TaskError {}

export interface NtfsMountResult {
  /** Set when the volume only mounted without norecover (its journal was replayed). */
  recovered: boolean;
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? '';
}

export async function mountNtfs(node: string, target: string, readOnly: boolean): Promise<NtfsMountResult> {
  if (!existsSync('/dev/fuse')) await run('modprobe', ['fuse'], { allowFailure: true });
  // ntfs-3g run by root mounts without nosuid and nodev unless told; nothing of a Windows volume runs in the helper.
  const base = ['ignore_case', 'windows_names', 'nosuid', 'nodev', 'noexec', readOnly ? 'ro' : 'rw'];
  const attempt = (options: string[]) =>
    run('lowntfs-3g', ['-o', options.join(','), node, target], { allowFailure: true });
  let r = await attempt([...base, 'norecover']);
  let recovered = false;
  if (r.code === NTFS_VOLUME_UNCLEAN_UNMOUNT || (r.code !== 0 && r.code !== NTFS_VOLUME_HIBERNATED && !readOnly)) {
    r = await attempt(base);
    recovered = r.code === 0;
  }
  const said = `${r.stderr}\n${r.stdout}`;
  const hibernated = r.code === NTFS_VOLUME_HIBERNATED || /hibernat|kept in Windows cache/i.test(said);
  if (r.code !== 0) {
    if (hibernated) throw new NtfsHibernatedError(`the NTFS volume ${node} is hibernated: ${HIBERNATED_HELP}`);
    throw new TaskError(`cannot mount the NTFS volume ${node} (lowntfs-3g exit ${r.code}): ${lastLine(said)}`);
  }
  // ntfs-3g mounts an unsafe (hibernated, Fast Startup) volume read-only instead of failing.
  if (!readOnly && !mountedReadWrite(target)) {
    await umountNtfs(target);
    if (hibernated) throw new NtfsHibernatedError(`the NTFS volume ${node} is hibernated: ${HIBERNATED_HELP}`);
    throw new TaskError(`ntfs-3g mounted the NTFS volume ${node} read-only: ${lastLine(said) || 'no reason given'}`);
  }
  return { recovered };
}

function mountedReadWrite(target: string): boolean {
  const entry = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[1] === target);
  return entry !== undefined && (entry[3] ?? '').split(',').includes('rw');
}

function ntfsProcesses(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      // /proc/<pid>/stat: "pid (comm) state ..."; a zombie (Z) has finished: the helper is
      // PID 1 and the daemonized ntfs-3g is its orphan, reaped late or never.
      const m = /^\d+ \((.*)\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      if (m && (m[1] === 'ntfs-3g' || m[1] === 'lowntfs-3g') && m[2] !== 'Z') found.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** Unmounts and waits until no ntfs-3g process is left (it writes after umount returns). */
export async function umountNtfs(target: string): Promise<void> {
  await run('umount', [target]);
  const deadline = Date.now() + 120_000;
  while (ntfsProcesses().length > 0) {
    if (Date.now() > deadline) throw new TaskError('ntfs-3g did not finish writing within 120 s of the unmount');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether the volume's dirty flag is set (ntfsinfo -m). */
export async function ntfsDirty(node: string): Promise<boolean> {
  // -f: ntfsinfo otherwise refuses the very volumes asked about (scheduled for check).
  const r = await run('ntfsinfo', ['-f', '-m', node], { allowFailure: true });
  if (r.code !== 0) throw new TaskError(`cannot read the NTFS volume information of ${node}: ${lastLine(r.stderr)}`);
  const flags = /Volume Flags:\s*0x([0-9a-f]+)/i.exec(r.stdout)?.[1];
  if (flags === undefined) throw new TaskError(`ntfsinfo printed no volume flags for ${node}`);
  // VOLUME_IS_DIRTY is bit 0.
  return (parseInt(flags, 16) & 1) === 1;
}

/** Grows the NTFS filesystem to its partition; a dirty volume is refused unless noCheck. */
export async function ntfsResize(node: string, noCheck: boolean): Promise<void> {
  if (!noCheck && (await ntfsDirty(node)))
    throw new TaskError(
      `the NTFS volume ${node} is marked dirty; Windows must check it (chkdsk) before it can be resized offline (or set OFFLINE_NTFSRESIZE_NOCHECK)`,
    );
  await run('ntfsresize', ['-P', '-f', node]);
  if (noCheck) await run('ntfsfix', ['-d', node]);
}
