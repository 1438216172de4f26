/**
 * The BSD families (FreeBSD, OpenBSD, NetBSD): their steps of FixPartitionTable (MBR slice
 * + disklabel), filesystem growth (no UFS growfs runs in the helper: the guest grows its
 * root at first boot where its rc system can), MountImage (disklabel / DUID mapping,
 * read-write with the helper's write-enabled ufs module), AssignHostname, ChangePassword,
 * ConfigureNetwork and DeleteSSHKeys. The file edits work on any GuestFs and are tested
 * on directories.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { osFamily, type HelperContext } from '../context.ts';
import { lastPartition, readPartitionTable } from '../disks.ts';
import { run, TaskError } from '../exec.ts';
import { GuestFs } from '../guest-files.ts';
import { bsdInterfaces, renderBsd } from '../network/bsd-renderers.ts';
import { describeNic, networkModel } from '../network/model.ts';
import { parseBsdDevice, nodeForStart, type KernelPartition } from '../bsd/devices.ts';
import {
  growDisklabel,
  labelProblems,
  parseDisklabel,
  usedPartitions,
  FS_BSDFFS,
  LABEL_OFFSET,
  type Disklabel,
} from '../bsd/disklabel.ts';
import {
  DEFAULT_HASH_METHOD,
  masterPasswdWithPassword,
  mkpasswdMethod,
  PWD_MKDB_MARKER,
  rcLocalWithPwdMkdb,
} from '../bsd/master-passwd.ts';
import { BSD_MBR_TYPES, isBsdFamily, type BsdFamily } from '../bsd/partition-types.ts';
import { rcConfWith } from '../bsd/rc-conf.ts';
import { kernelPartitions, mountUfs, readLabelSector, writeAt } from '../bsd/ufs.ts';
import { parseFstab } from '../tasks/mount.ts';
import { addAuthorizedKeys } from './linux.ts';

export function bsdFamily(ctx: HelperContext): BsdFamily {
  const family = osFamily(ctx);
  if (!isBsdFamily(family)) throw new TaskError(`OSFAMILY ${family ?? '(unknown)'} is not a BSD family`);
  return family;
}

// --- hostname -------------------------------------------------------------------

/** FreeBSD: rc.conf hostname=; OpenBSD: /etc/myname; NetBSD: both. Returns the files written. */
export function assignBsdHostname(fs: GuestFs, family: BsdFamily, hostname: string): string[] {
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(hostname))
    throw new TaskError(`hostname ${hostname} is not a valid host name`);
  const written: string[] = [];
  if (family !== 'openbsd') {
    fs.write('/etc/rc.conf', rcConfWith(fs.readOr('/etc/rc.conf', ''), [['hostname', hostname]]));
    written.push('/etc/rc.conf');
  }
  if (family !== 'freebsd') {
    fs.write('/etc/myname', `${hostname}\n`, { mode: 0o644 });
    written.push('/etc/myname');
  }
  return written;
}

// --- passwords ------------------------------------------------------------------

/** master.passwd, the stale spwd.db (NetBSD: and its .tmp files) and the first-boot pwd_mkdb hook. */
export function changeBsdPasswords(fs: GuestFs, family: BsdFamily, users: readonly string[], hash: string): void {
  fs.write('/etc/master.passwd', masterPasswdWithPassword(fs.read('/etc/master.passwd'), users, hash), { mode: 0o600 });
  fs.remove('/etc/spwd.db');
  if (family === 'netbsd') {
    for (const tmp of ['/etc/spwd.db.tmp', '/etc/pwd.db.tmp', '/etc/passwd.tmp']) fs.remove(tmp);
  }
  fs.write(PWD_MKDB_MARKER, '', { mode: 0o600 });
  fs.write('/etc/rc.local', rcLocalWithPwdMkdb(fs.readOr('/etc/rc.local', '')), { mode: 0o755 });
}

async function hashFor(family: BsdFamily, password: string, method: string): Promise<string> {
  const r = await run('mkpasswd', [`--method=${mkpasswdMethod(family, method)}`, '--stdin'], {
    input: `${password}\n`,
  });
  const hash = r.stdout.trim();
  if (!hash.startsWith('$')) throw new TaskError('mkpasswd produced no hash');
  return hash;
}

// --- SSH host keys --------------------------------------------------------------

/** Removes /etc/ssh/ssh_host_* and the HostKey files sshd_config names; sshd makes new ones at boot. */
export function deleteBsdSshKeys(fs: GuestFs): string[] {
  const removed: string[] = [];
  const files = new Set<string>();
  if (fs.isDirectory('/etc/ssh')) {
    for (const name of readdirSync(fs.path('/etc/ssh')))
      if (name.startsWith('ssh_host_')) files.add(`/etc/ssh/${name}`);
  }
  for (const line of fs.readOr('/etc/ssh/sshd_config', '').split('\n')) {
    const m = /^\s*HostKey\s+(\/\S+)/i.exec(line);
    if (m) {
      files.add(m[1] as string);
      files.add(`${m[1] as string}.pub`);
    }
  }
  for (const file of [...files].sort()) {
    if (!fs.exists(file)) continue;
    fs.remove(file);
    removed.push(file);
  }
  return removed;
}

function usersOf(ctx: HelperContext): string[] {
  const list = (ctx.properties.USERS ?? '').split(/\s+/).filter(Boolean);
  if (list.length === 0) ctx.warn('USERS not set: using root');
  return list.length > 0 ? list : ['root'];
}

export async function changeBsdPassword(ctx: HelperContext, fs: GuestFs): Promise<void> {
  const family = bsdFamily(ctx);
  const targets = usersOf(ctx);
  const { password, passwordHash, authKeys } = ctx.config.secrets;
  if (password !== undefined || passwordHash !== undefined) {
    const method = ctx.properties.PASSWD_HASHING_METHOD ?? DEFAULT_HASH_METHOD[family];
    let hash: string;
    try {
      hash = passwordHash ?? (await hashFor(family, password as string, method));
      changeBsdPasswords(fs, family, targets, hash);
    } catch (e) {
      throw e instanceof TaskError ? e : new TaskError((e as Error).message);
    }
    ctx.info(
      `password changed for ${targets.join(', ')} in /etc/master.passwd${passwordHash ? '' : ` (${method})`}; pwd_mkdb runs at first boot`,
    );
  }
  if (authKeys !== undefined)
    ctx.info(`authorized keys added to ${addAuthorizedKeys(fs, targets, authKeys).join(', ')}`);
}

// --- network --------------------------------------------------------------------

export function configureBsdNetwork(ctx: HelperContext, fs: GuestFs): void {
  const family = bsdFamily(ctx);
  if (ctx.config.nics.length === 0) {
    ctx.info('the instance has no NICs: no network to configure');
    return;
  }
  try {
    const nics = networkModel(ctx.config);
    const types = new Map(ctx.config.nics.map((n) => [n.index, n.frontendType]));
    const named = bsdInterfaces(family, nics, types);
    for (const { nic, ifname } of named) ctx.info(`NIC ${nic.index} → ${ifname}: ${describeNic(nic)}`);
    const out = renderBsd(family, named, fs.readOr('/etc/rc.conf', ''));
    for (const file of out.files) fs.write(file.path, file.content, { mode: file.mode });
    for (const file of out.remove) fs.remove(file);
    if (out.rcConf !== undefined) fs.write('/etc/rc.conf', out.rcConf);
    for (const warning of out.warnings) ctx.warn(warning);
    ctx.info(
      `written: ${[...out.files.map((f) => f.path), ...(out.rcConf !== undefined ? ['/etc/rc.conf'] : [])].join(', ')}`,
    );
  } catch (e) {
    throw e instanceof TaskError ? e : new TaskError(`ConfigureNetwork: ${(e as Error).message}`);
  }
}

// --- disks ----------------------------------------------------------------------

interface Slice {
  number: number;
  start: number;
  size: number;
  label: Disklabel;
}

async function bsdSlice(ctx: HelperContext, family: BsdFamily): Promise<Slice | undefined> {
  const table = await readPartitionTable(ctx.disk);
  if (table.type !== 'dos') return undefined;
  const slice = table.partitions.find((p) => BSD_MBR_TYPES[p.type] === family);
  if (!slice)
    throw new TaskError(
      `the MBR has no ${family} slice (type ${Object.entries(BSD_MBR_TYPES).find(([, f]) => f === family)?.[0]})`,
    );
  try {
    return {
      number: slice.number,
      start: slice.start,
      size: slice.size,
      label: parseDisklabel(readLabelSector(ctx.disk, slice.start), family),
    };
  } catch (e) {
    throw new TaskError(`${family} slice ${slice.number}: ${(e as Error).message}`);
  }
}

/** MBR slice + disklabel: the slice grows to the end of the disk, then the label's last partition to the end of the slice. */
export async function fixBsdPartitionTable(ctx: HelperContext): Promise<void> {
  const family = bsdFamily(ctx);
  const table = await readPartitionTable(ctx.disk);
  if (table.type === 'gpt') {
    if (family !== 'freebsd') ctx.warn(`${family} on GPT: growing the last GPT partition`);
    await run('sgdisk', ['-e', ctx.disk]);
    const last = lastPartition(await readPartitionTable(ctx.disk));
    if (!last) throw new TaskError('The image has no partitions to grow');
    await run('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', '-N', String(last.number), ctx.disk], {
      input: ', +\n',
    });
    ctx.resizedPartition = last.node;
  } else {
    const slice = (await bsdSlice(ctx, family)) as Slice;
    // Checked before the slice grows: a label reaching past its slice is hostile, not growable.
    const problems = labelProblems(slice.label, slice.start, slice.size);
    if (problems.length > 0) throw new TaskError(`${family} disklabel: ${problems[0] as string}`);
    const last = lastPartition(table);
    if (last?.number !== slice.number)
      throw new TaskError(`the ${family} slice ${slice.number} is not the last partition: it cannot grow`);
    await run('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', '-N', String(slice.number), ctx.disk], {
      input: ', +\n',
    });
    const grown = (await readPartitionTable(ctx.disk)).partitions.find((p) => p.number === slice.number);
    if (!grown) throw new TaskError(`slice ${slice.number} vanished after growing`);
    let result: ReturnType<typeof growDisklabel>;
    try {
      result = growDisklabel(readLabelSector(ctx.disk, slice.start), family, grown.start, grown.size, table.sectors);
    } catch (e) {
      throw new TaskError(`${family} disklabel: ${(e as Error).message}`);
    }
    writeAt(ctx.disk, grown.start * 512 + LABEL_OFFSET, result.sector);
    ctx.info(
      `grew slice ${slice.number} from ${slice.size} to ${grown.size} sectors; disklabel partition ${result.grown ?? '(none)'} from ${result.oldSize} to ${result.newSize} sectors`,
    );
    await rereadPartitions(ctx.disk);
    const grownLetter =
      result.grown === undefined
        ? undefined
        : usedPartitions(parseDisklabel(result.sector, family), grown.start).find((p) => p.letter === result.grown);
    if (grownLetter)
      ctx.resizedPartition = nodeForStart(
        kernelPartitions(ctx.disk),
        grownLetter.start,
        grownLetter.size,
        `disklabel partition ${grownLetter.letter}`,
      );
    return;
  }
  await rereadPartitions(ctx.disk);
}

async function rereadPartitions(disk: string): Promise<void> {
  await run('partx', ['-u', disk], { allowFailure: true });
  await run('blockdev', ['--rereadpt', disk], { allowFailure: true });
  await run('udevadm', ['settle'], { allowFailure: true });
}

/**
 * The helper has no UFS growfs (Debian bookworm has no ufsutils; makefs cannot grow), so
 * the guest grows its own root filesystem at first boot where its rc system can: FreeBSD's
 * rc.d/growfs (growfs_enable, no swap partition added) and NetBSD's rc.d/resize_root
 * (resize_root). Only when FixPartitionTable grew the root partition itself; OpenBSD has no
 * such hook (its growfs needs the filesystem unmounted): a warning.
 */
export async function growBsdRootAtFirstBoot(ctx: HelperContext, fs: GuestFs): Promise<void> {
  const family = bsdFamily(ctx);
  // MountImage found the root (it runs first); computed again only if it did not record it.
  const root = ctx.rootDevice ?? (await rootDevice(ctx, family, kernelPartitions(ctx.disk))).root;
  if (ctx.resizedPartition !== root) {
    ctx.info(
      `the partition FixPartitionTable grew (${ctx.resizedPartition ?? 'none'}) does not hold the root filesystem (${root}): no filesystem to grow`,
    );
    return;
  }
  if (family === 'openbsd') {
    ctx.warn(
      `the root partition ${root} was grown but its filesystem keeps its size: OpenBSD cannot grow a mounted root and has no first-boot hook for it (run growfs(8) on it from single-user mode)`,
    );
    return;
  }
  const settings: Array<[string, string]> =
    family === 'freebsd'
      ? [
          ['growfs_enable', 'YES'],
          ['growfs_swap_size', '0'],
        ]
      : [['resize_root', 'YES']];
  fs.write('/etc/rc.conf', rcConfWith(fs.readOr('/etc/rc.conf', ''), settings));
  ctx.info(
    `the root filesystem on ${root} grows to its partition at first boot (${family === 'freebsd' ? 'rc.d/growfs' : 'rc.d/resize_root'}): ${settings.map(([k, v]) => `${k}=${v}`).join(' ')} in /etc/rc.conf`,
  );
}

async function rootDevice(
  ctx: HelperContext,
  family: BsdFamily,
  parts: readonly KernelPartition[],
): Promise<{ root: string; mapLetter?: (letter: string) => string; duid: string }> {
  const slice = await bsdSlice(ctx, family);
  if (!slice) {
    const number = Number(ctx.properties.ROOT_PARTITION);
    const node = (await readPartitionTable(ctx.disk)).partitions.find((p) => p.number === number)?.node;
    if (!node) throw new TaskError(`ROOT_PARTITION ${number} does not exist on the disk`);
    return { root: node, duid: '' };
  }
  const problems = labelProblems(slice.label, slice.start, slice.size);
  if (problems.length > 0) throw new TaskError(problems[0] as string);
  const used = usedPartitions(slice.label, slice.start);
  const mapLetter = (letter: string): string => {
    const p = used.find((u) => u.letter === letter);
    if (!p) throw new TaskError(`disklabel partition ${letter} does not exist in the ${family} slice`);
    if (p.fstype !== FS_BSDFFS) throw new TaskError(`disklabel partition ${letter} is not FFS (fstype ${p.fstype})`);
    return nodeForStart(parts, p.start, p.size, `disklabel partition ${letter}`);
  };
  return { root: mapLetter('a'), mapLetter, duid: slice.label.duid };
}

/** MountImage for the BSDs: root 'a' of the slice (or ROOT_PARTITION on GPT), then the fstab's FFS/UFS entries. */
export async function mountBsdImage(ctx: HelperContext): Promise<void> {
  const family = bsdFamily(ctx);
  const parts = kernelPartitions(ctx.disk);
  const { root, mapLetter, duid } = await rootDevice(ctx, family, parts);
  mkdirSync(ctx.target, { recursive: true });
  await mountUfs(root, ctx.target, family, ctx.warn);
  ctx.mounts.push(ctx.target);
  ctx.rootDevice = root;
  const guest = new GuestFs(ctx.target);
  let fstabText = '';
  try {
    fstabText = guest.read('/etc/fstab');
  } catch {
    ctx.warn('the image has no /etc/fstab');
  }
  const fstab = parseFstab(fstabText);
  const gpt = await readPartitionTable(ctx.disk);
  for (const entry of fstab.filter(
    (e) => (e.type === 'ffs' || e.type === 'ufs') && e.mountPoint !== '/' && !e.options.split(',').includes('noauto'),
  )) {
    const device = parseBsdDevice(entry.source, duid);
    const node =
      device.kind === 'letter'
        ? (
            mapLetter ??
            (() => {
              throw new TaskError(`fstab ${entry.source}: a disklabel name on a GPT disk`);
            })
          )(device.letter)
        : gpt.partitions.find((p) => p.number === device.number)?.node;
    if (!node) throw new TaskError(`fstab ${entry.source}: no such partition`);
    const where = guest.mkdirp(entry.mountPoint, 0o755, 0, 0);
    await mountUfs(node, where, family, ctx.warn);
    ctx.mounts.push(where);
  }
}
