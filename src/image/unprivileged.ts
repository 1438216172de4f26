/**
 * Running a tool that parses untrusted bytes as an unprivileged user (HELPER_USER): its
 * uid and gid, and the command line that drops to them (setpriv: no supplementary groups,
 * no capabilities, no_new_privs, killed with its parent) under resource limits (prlimit).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { UserError } from '../util/errors.ts';

export interface UnprivilegedUser {
  name: string;
  uid: number;
  gid: number;
}

export interface ResourceLimits {
  addressSpaceBytes: number;
  cpuSeconds: number;
  /** Largest file the process may write (0: it writes no file). */
  fileSizeBytes: number;
  openFiles: number;
}

const minimalEnv = () => ({ PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' });

/** The uid and primary gid of `user` (the HELPER_USER setting, looked up with id(1), so NSS too); uid or gid 0 is refused. */
export async function resolveUnprivilegedUser(user: string, purpose: string): Promise<UnprivilegedUser> {
  let ids: RegExpExecArray | null = null;
  try {
    const { stdout } = await promisify(execFile)('id', ['--', user], { env: minimalEnv() });
    ids = /^uid=(\d+)\S* gid=(\d+)/.exec(stdout);
  } catch {
    // no such user: below
  }
  if (!ids) throw new UserError(`HELPER_USER: no user '${user}' on this host`);
  const uid = Number(ids[1]);
  const gid = Number(ids[2]);
  if (uid === 0) throw new UserError(`HELPER_USER: ${user} has uid 0; ${purpose} as an unprivileged user`);
  if (gid === 0)
    throw new UserError(
      `HELPER_USER: ${user} has group 0 (root) as its primary group; ${purpose} as an unprivileged user`,
    );
  return { name: user, uid, gid };
}

/** argv that runs `command` as `who`, with no privileges left and within `limits`. */
export function unprivilegedArgv(who: UnprivilegedUser, limits: ResourceLimits, command: readonly string[]): string[] {
  return [
    'setpriv',
    `--reuid=${who.uid}`,
    `--regid=${who.gid}`,
    '--clear-groups',
    '--no-new-privs',
    '--bounding-set=-all',
    '--inh-caps=-all',
    '--pdeathsig=KILL',
    '--',
    'prlimit',
    `--as=${limits.addressSpaceBytes}`,
    `--cpu=${limits.cpuSeconds}`,
    `--fsize=${limits.fileSizeBytes}`,
    `--nofile=${limits.openFiles}`,
    '--',
    ...command,
  ];
}
