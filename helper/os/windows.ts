/**
 * The Windows adapter (Vista and later: windows; XP / 2003: windows-legacy). Windows is
 * customized at its first boot: the helper installs the answer file (unattend.xml or
 * sysprep.inf) with ComputerName and ProductKey, the scripts its specialize pass (or
 * CmdLines.txt) runs (passwords, filesystem extension), and SetupComplete.cmd that
 * restores what the helper changed and deletes the scripts. Registry edits go through
 * the hivex tools.
 */
import type { HelperContext } from '../context.ts';
import { isYes } from '../context.ts';
import { TaskError } from '../exec.ts';
import type { GuestFs } from '../guest-files.ts';
import { computerNameFor } from '../windows/computer-name.ts';
import { findCaseInsensitive, type WindowsInfo } from '../windows/guest.ts';
import { listSubkeys, readDword, writeValues } from '../windows/hive.ts';
import { builtInSysprepInf, IniFile } from '../windows/sysprep-inf.ts';
import {
  addSpecializeCommand,
  AnswerFileError,
  builtInUnattend,
  localAccountNames,
  parseUnattend,
  serializeUnattend,
  setShellSetup,
} from '../windows/unattend.ts';
import { decodeXmlBytes, type XmlDocument } from '../windows/xml.ts';

const PANTHER_UNATTEND = '/Windows/Panther/unattend.xml';
const SYSPREP_INF = '/sysprep/sysprep.inf';
const SCRIPTS_DIR = '/Windows/SnfScripts';
const PASSWORD_SCRIPT = `${SCRIPTS_DIR}/ChangeAdminPassword.cmd`;
const EXTEND_SCRIPT = `${SCRIPTS_DIR}/ExtendFilesystem`;
const SETUP_COMPLETE = '/Windows/Setup/Scripts/SetupComplete.cmd';

const CLEANUP_MARK = 'rem snf-image: clean-up';
const win = (guestPath: string) => `C:${guestPath.replaceAll('/', '\\')}`;
const crlf = (lines: readonly string[]) => `${lines.join('\r\n')}\r\n`;

function windowsInfo(ctx: HelperContext): WindowsInfo {
  if (!ctx.windows) throw new TaskError('the Windows volume is not mounted (MountImage did not run)');
  return ctx.windows;
}

function legacy(ctx: HelperContext): boolean {
  return windowsInfo(ctx).family === 'windows-legacy';
}

// ---------------------------------------------------------------- answer files

function readUnattend(fs: GuestFs): XmlDocument {
  if (!fs.exists(PANTHER_UNATTEND))
    throw new TaskError(`no answer file at ${win(PANTHER_UNATTEND)} (InstallUnattend did not run)`);
  return parseUnattend(decodeXmlBytes(fs.readBytes(PANTHER_UNATTEND)), win(PANTHER_UNATTEND));
}

function writeUnattend(fs: GuestFs, doc: XmlDocument): void {
  fs.write(PANTHER_UNATTEND, serializeUnattend(doc));
}

function readSysprepInf(fs: GuestFs): IniFile {
  if (!fs.exists(SYSPREP_INF)) throw new TaskError(`no ${win(SYSPREP_INF)} (InstallUnattend did not run)`);
  return new IniFile(fs.read(SYSPREP_INF));
}

/** Guest path of CmdLines.txt: InstallFilesPath (under C:\sysprep) + $OEM$. */
export function cmdLinesPath(inf: IniFile): string {
  const value = inf.get('Unattended', 'InstallFilesPath') ?? 'C:\\sysprep\\i386';
  // Trailing backslashes dropped without /\\+$/, which is quadratic on a long run of them.
  let end = value.length;
  while (end > 0 && value[end - 1] === '\\') end--;
  const installFiles = value.slice(0, end);
  if (!/^C:\\sysprep(\\[^\\]+)*$/i.test(installFiles) || installFiles.split('\\').includes('..'))
    throw new TaskError(`sysprep.inf: InstallFilesPath ${installFiles} must be a directory under C:\\sysprep`);
  return `${installFiles.slice(2).replaceAll('\\', '/')}/$OEM$/CmdLines.txt`;
}

/** Adds a CmdLines.txt command, keeping the SetupComplete.cmd clean-up the last one. */
function addCmdLine(fs: GuestFs, command: string): void {
  const path = cmdLinesPath(readSysprepInf(fs));
  const file = new IniFile(fs.readOr(path, ''));
  const cleanup = `"${win(SETUP_COMPLETE)}"`;
  file.remove('Commands', command);
  file.remove('Commands', cleanup);
  if (command !== cleanup) file.append('Commands', command);
  file.append('Commands', cleanup);
  fs.write(path, file.toString());
}

function answerFileText(
  ctx: HelperContext,
  fs: GuestFs,
  imageCandidates: readonly string[],
  builtIn: () => string,
): { text: string; source: string } {
  if (ctx.config.answerFile !== undefined)
    return { text: decodeXmlBytes(Buffer.from(ctx.config.answerFile, 'base64')), source: 'from os_answer_file' };
  if (!isYes(ctx.properties.IGNORE_UNATTEND)) {
    for (const candidate of imageCandidates) {
      // Windows names are case-insensitive (also where the volume is not mounted ignore_case).
      const found = findCaseInsensitive(fs.root, ...candidate.split('/').filter(Boolean));
      const guestPath = found?.slice(fs.root.replace(/\/$/, '').length);
      if (guestPath)
        return { text: decodeXmlBytes(fs.readBytes(guestPath)), source: `of the image (${win(guestPath)})` };
    }
  }
  return { text: builtIn(), source: 'built into snf-image' };
}

function setupCompleteBase(existing: string | undefined): string {
  const own = existing ? existing.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n') : ['@echo off'];
  return crlf([
    ...own,
    'rem snf-image: first-boot commands',
    CLEANUP_MARK,
    `if exist ${win(PASSWORD_SCRIPT)} echo ${'X'.repeat(200)}> ${win(PASSWORD_SCRIPT)}`,
    `rmdir /S /Q ${win(SCRIPTS_DIR)}`,
    'del /F /Q C:\\unattend.xml',
    `del /F /Q ${win(PANTHER_UNATTEND)}`,
  ]);
}

/** Adds a command SetupComplete.cmd runs at first boot, before its clean-up. */
function addFirstBootCommand(fs: GuestFs, command: string): void {
  const lines = fs.read(SETUP_COMPLETE).replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
  const at = lines.indexOf(CLEANUP_MARK);
  if (at < 0) throw new TaskError(`${win(SETUP_COMPLETE)} has no snf-image clean-up section`);
  lines.splice(at, 0, command);
  fs.write(SETUP_COMPLETE, crlf(lines));
}

export async function installUnattend(ctx: HelperContext, fs: GuestFs): Promise<void> {
  const info = windowsInfo(ctx);
  fs.mkdirp(SCRIPTS_DIR, 0o755, 0, 0);
  fs.write(SETUP_COMPLETE, setupCompleteBase(fs.exists(SETUP_COMPLETE) ? fs.read(SETUP_COMPLETE) : undefined));
  const productKey = ctx.config.secrets.productKey;
  if (info.family === 'windows-legacy') {
    const { text, source } = answerFileText(ctx, fs, [SYSPREP_INF], () =>
      builtInSysprepInf(ctx.config.windowsTimezone),
    );
    const inf = new IniFile(text);
    cmdLinesPath(inf);
    if (productKey !== undefined) inf.set('UserData', 'ProductKey', productKey);
    if ((inf.get('GuiUnattended', 'AdminPassword') ?? '') === '') {
      // A blank password here, so that mini-setup does not stop to ask; the real one is
      // set by ChangeAdminPassword.cmd (the password is never written to sysprep.inf).
      inf.set('GuiUnattended', 'AdminPassword', '*');
      inf.set('GuiUnattended', 'EncryptedAdminPassword', 'No');
    }
    fs.write(SYSPREP_INF, inf.toString());
    addCmdLine(fs, `"${win(SETUP_COMPLETE)}"`);
    ctx.info(`sysprep.inf ${source} installed at ${win(SYSPREP_INF)}`);
    return;
  }
  const { text, source } = answerFileText(ctx, fs, ['/unattend.xml', '/autounattend.xml'], () =>
    builtInUnattend(ctx.config.windowsTimezone),
  );
  let doc: XmlDocument;
  try {
    doc = parseUnattend(text, source);
  } catch (error) {
    if (error instanceof AnswerFileError) throw new TaskError(error.message);
    throw error;
  }
  if (productKey !== undefined) setShellSetup(doc, info.arch, 'ProductKey', productKey);
  writeUnattend(fs, doc);
  ctx.info(`answer file ${source} installed at ${win(PANTHER_UNATTEND)}`);
}

// ---------------------------------------------------------------- hostname, passwords

/**
 * rename of a deployed Windows: its answer file has been used and deleted, so the computer
 * name goes straight into the registry (as Windows keeps it), effective at next boot.
 */
async function renameInRegistry(ctx: HelperContext, name: string): Promise<void> {
  const info = windowsInfo(ctx);
  const set = `\\${info.controlSet}`;
  await writeValues(info.hives.system, `${set}\\Control\\ComputerName\\ComputerName`, {
    ComputerName: { type: 'string', value: name.toUpperCase() },
  });
  await writeValues(info.hives.system, `${set}\\Services\\Tcpip\\Parameters`, {
    'NV Hostname': { type: 'string', value: name },
    Hostname: { type: 'string', value: name },
  });
  ctx.info(`Windows computer name ${name} set in the registry`);
}

export async function assignHostname(ctx: HelperContext, fs: GuestFs): Promise<void> {
  const name = computerNameFor(ctx.config.hostname);
  if (ctx.config.operation === 'rename') return renameInRegistry(ctx, name);
  if (legacy(ctx)) {
    const inf = readSysprepInf(fs);
    inf.set('UserData', 'ComputerName', name);
    fs.write(SYSPREP_INF, inf.toString());
  } else {
    const doc = readUnattend(fs);
    setShellSetup(doc, windowsInfo(ctx).arch, 'ComputerName', name);
    writeUnattend(fs, doc);
  }
  ctx.info(`Windows computer name ${name} set in the answer file`);
}

/** Accounts of the image: the SAM's user names, plus the ones the answer file creates. */
async function knownAccounts(ctx: HelperContext, fs: GuestFs): Promise<string[]> {
  const names = await listSubkeys(windowsInfo(ctx).hives.sam, '\\SAM\\Domains\\Account\\Users\\Names');
  if (!legacy(ctx)) names.push(...localAccountNames(readUnattend(fs)));
  return names;
}

export function passwordScript(users: readonly string[], password: string): string {
  if (/["\r\n\0]/.test(password))
    throw new TaskError('img_passwd: a Windows password cannot contain double quotes or line breaks');
  const quoted = password.replace(/%/g, '%%');
  return crlf([
    '@echo off',
    ...users.map((u) => `net user "${u}" "${quoted}" /ACTIVE:YES /EXPIRES:NEVER /PASSWORDREQ:YES`),
  ]);
}

export async function changePassword(ctx: HelperContext, fs: GuestFs, users: readonly string[]): Promise<void> {
  const password = ctx.config.secrets.password;
  if (password === undefined)
    throw new TaskError(
      'img_passwd is required to change Windows passwords (img_passwd_hash and auth_keys are Unix only)',
    );
  const known = (await knownAccounts(ctx, fs)).map((n) => n.toLowerCase());
  const unknown = users.filter((u) => !known.includes(u.toLowerCase()));
  if (unknown.length > 0)
    throw new TaskError(
      `USERS: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not an account of the image (SAM) or of its answer file`,
    );
  for (const u of users)
    if (/["%\r\n]/.test(u)) throw new TaskError(`USERS: ${JSON.stringify(u)} cannot be used in a Windows command`);
  fs.mkdirp(SCRIPTS_DIR, 0o755, 0, 0);
  fs.write(PASSWORD_SCRIPT, passwordScript(users, password));
  if (legacy(ctx)) addCmdLine(fs, `"${win(PASSWORD_SCRIPT)}"`);
  else {
    const doc = readUnattend(fs);
    addSpecializeCommand(doc, windowsInfo(ctx).arch, {
      description: 'Change user passwords',
      path: win(PASSWORD_SCRIPT),
    });
    writeUnattend(fs, doc);
  }
  ctx.info(`password of ${users.join(', ')} changed at first boot`);
}

// ---------------------------------------------------------------- registry, filesystem

export async function disableRemoteDesktopConnections(ctx: HelperContext, fs: GuestFs): Promise<void> {
  const info = windowsInfo(ctx);
  const key = `\\${info.controlSet}\\Control\\Terminal Server`;
  const original = await readDword(info.hives.system, key, 'fDenyTSConnections');
  await writeValues(info.hives.system, key, { fDenyTSConnections: { type: 'dword', value: 1 } });
  const live = 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server';
  addFirstBootCommand(
    fs,
    original === undefined
      ? `reg delete "${live}" /v fDenyTSConnections /f`
      : `reg add "${live}" /v fDenyTSConnections /t REG_DWORD /d ${original} /f`,
  );
  ctx.info(`Remote Desktop disabled until first boot (fDenyTSConnections was ${original ?? 'unset'})`);
}

/** The diskpart script that extends the grown partition's filesystem at first boot. */
export function extendFilesystemScript(partition: number): string {
  return crlf(['select disk 0', `select partition ${partition}`, 'extend filesystem', 'exit']);
}

export async function extendFilesystemAtFirstBoot(ctx: HelperContext, fs: GuestFs, partition: number): Promise<void> {
  if (legacy(ctx) || isYes(ctx.properties.OFFLINE_NTFSRESIZE)) {
    ctx.info('the NTFS filesystem is resized offline after unmounting (OFFLINE_NTFSRESIZE or Windows XP / 2003)');
    return;
  }
  fs.mkdirp(SCRIPTS_DIR, 0o755, 0, 0);
  fs.write(EXTEND_SCRIPT, extendFilesystemScript(partition));
  const doc = readUnattend(fs);
  addSpecializeCommand(doc, windowsInfo(ctx).arch, {
    description: 'Extend the file system',
    path: `diskpart.exe /s ${win(EXTEND_SCRIPT)}`,
  });
  writeUnattend(fs, doc);
  ctx.info(`diskpart extends partition ${partition} at first boot`);
}

/** Personality files on NTFS: written as given; an existing file is kept as <name>.bak.<seconds>. */
export function injectFile(fs: GuestFs, path: string, contents: Buffer, now: Date): void {
  const parent = path.slice(0, path.lastIndexOf('/')) || '/';
  fs.mkdirp(parent, 0o755, 0, 0);
  if (fs.exists(path)) {
    const backup = `${path}.bak.${Math.floor(now.getTime() / 1000)}`;
    fs.write(backup, fs.readBytes(path));
    fs.remove(path);
  }
  fs.write(path, contents);
}
