/**
 * One interface per OS family for the tasks whose work differs between families. Tasks
 * ask adapterFor(family) and call the same methods whatever the guest is.
 */
import type { HelperContext, OsFamily } from '../context.ts';
import { TaskError } from '../exec.ts';
import type { GuestFs } from '../guest-files.ts';
import * as linux from './linux.ts';
import * as windows from './windows.ts';
import { assignBsdHostname, bsdFamily, changeBsdPassword, deleteBsdSshKeys } from './bsd.ts';
import type { BsdFamily } from '../bsd/partition-types.ts';

export interface OsAdapter {
  readonly family: OsFamily;
  assignHostname(ctx: HelperContext, fs: GuestFs): Promise<void>;
  changeMachineId(ctx: HelperContext, fs: GuestFs): Promise<void>;
  changePassword(ctx: HelperContext, fs: GuestFs): Promise<void>;
  deleteSshKeys(ctx: HelperContext, fs: GuestFs): Promise<void>;
  selinuxAutorelabel(ctx: HelperContext, fs: GuestFs): Promise<void>;
}

function users(ctx: HelperContext, fallback: string): string[] {
  const list = (ctx.properties.USERS ?? '').split(/\s+/).filter(Boolean);
  if (list.length === 0) ctx.warn(`USERS not set: using ${fallback}`);
  return list.length > 0 ? list : [fallback];
}

const linuxAdapter: OsAdapter = {
  family: 'linux',
  async assignHostname(ctx, fs) {
    const written = linux.assignHostname(fs, ctx.config.hostname);
    ctx.info(`hostname ${ctx.config.hostname} written to ${written.join(', ')}`);
  },
  async changeMachineId(ctx, fs) {
    if (!linux.changeMachineId(fs)) ctx.info('no machine id in the image (systemd makes one at first boot)');
  },
  async changePassword(ctx, fs) {
    const targets = users(ctx, 'root');
    const secrets = ctx.config.secrets;
    if (secrets.password !== undefined || secrets.passwordHash !== undefined) {
      const method = ctx.properties.PASSWD_HASHING_METHOD ?? linux.guestHashMethod(fs);
      const hash = secrets.passwordHash ?? (await linux.hashPassword(secrets.password as string, method));
      linux.changePasswords(fs, targets, hash);
      ctx.info(`password changed for ${targets.join(', ')}${secrets.passwordHash ? '' : ` (${method})`}`);
    }
    if (secrets.authKeys !== undefined) {
      const files = linux.addAuthorizedKeys(fs, targets, secrets.authKeys);
      ctx.info(`authorized keys added to ${files.join(', ')}`);
    }
  },
  async deleteSshKeys(ctx, fs) {
    const made = await linux.regenerateHostKeys(fs, ctx.config.hostKeys);
    ctx.info(made.length > 0 ? `new SSH host keys: ${made.join(', ')}` : 'the image has no /etc/ssh');
  },
  async selinuxAutorelabel(ctx, fs) {
    if (linux.selinuxAutorelabel(fs)) ctx.info('SELinux relabel at first boot requested');
  },
};

/** Tasks the table runs for Linux only; reaching one for Windows is a table error. */
function notForWindows(task: string): () => Promise<void> {
  return async () => {
    throw new TaskError(`${task} does not apply to Windows images`);
  };
}

function windowsAdapterFor(family: 'windows' | 'windows-legacy'): OsAdapter {
  return {
    family,
    assignHostname: (ctx, fs) => windows.assignHostname(ctx, fs),
    changePassword: (ctx, fs) => windows.changePassword(ctx, fs, users(ctx, 'Administrator')),
    changeMachineId: notForWindows('ChangeMachineId'),
    deleteSshKeys: notForWindows('DeleteSSHKeys'),
    selinuxAutorelabel: notForWindows('SELinuxAutorelabel'),
  };
}

function notFor(family: string, task: string): () => Promise<void> {
  return async () => {
    throw new TaskError(`${task} does not apply to ${family} images`);
  };
}

function bsdAdapterFor(family: BsdFamily): OsAdapter {
  return {
    family,
    async assignHostname(ctx, fs) {
      ctx.info(
        `hostname ${ctx.config.hostname} written to ${assignBsdHostname(fs, bsdFamily(ctx), ctx.config.hostname).join(', ')}`,
      );
    },
    changePassword: (ctx, fs) => changeBsdPassword(ctx, fs),
    async deleteSshKeys(ctx, fs) {
      const removed = deleteBsdSshKeys(fs);
      ctx.info(
        removed.length > 0
          ? `removed ${removed.join(', ')} (sshd makes new host keys at first boot)`
          : 'the image has no SSH host keys',
      );
    },
    changeMachineId: notFor(family, 'ChangeMachineId'),
    selinuxAutorelabel: notFor(family, 'SELinuxAutorelabel'),
  };
}

const ADAPTERS: Partial<Record<OsFamily, OsAdapter>> = {
  linux: linuxAdapter,
  windows: windowsAdapterFor('windows'),
  'windows-legacy': windowsAdapterFor('windows-legacy'),
  freebsd: bsdAdapterFor('freebsd'),
  openbsd: bsdAdapterFor('openbsd'),
  netbsd: bsdAdapterFor('netbsd'),
};

export function adapterFor(family: OsFamily | undefined): OsAdapter {
  const adapter = family ? ADAPTERS[family] : undefined;
  if (!adapter) throw new TaskError(`OSFAMILY ${family ?? '(unknown)'} is not supported by this version of snf-image`);
  return adapter;
}
