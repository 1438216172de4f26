/**
 * The Windows tasks run on the host against a Windows-shaped directory tree with real
 * hives (no VM, no NTFS): which answer file wins (os_answer_file, the image's, built-in,
 * IGNORE_UNATTEND), what each task adds, and what it refuses. The helper VM test
 * (test/integration/windows.test.ts) runs the same tasks on NTFS end to end.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { HelperContext } from '../../helper/context.ts';
import { GuestFs } from '../../helper/guest-files.ts';
import {
  assignHostname,
  changePassword,
  disableRemoteDesktopConnections,
  extendFilesystemAtFirstBoot,
  installUnattend,
} from '../../helper/os/windows.ts';
import { inspectWindows } from '../../helper/windows/guest.ts';
import { readDword } from '../../helper/windows/hive.ts';
import { IniFile } from '../../helper/windows/sysprep-inf.ts';
import {
  localAccountNames,
  parseUnattend,
  shellSetupValue,
  specializeCommands,
} from '../../helper/windows/unattend.ts';
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';
import { windowsHives, windowsToolsSkipReason, writeHive, type WindowsGuestOptions } from '../support/windows-guest.ts';

const UNATTEND = (account: string) =>
  `<unattend xmlns="urn:schemas-microsoft-com:unattend"><settings pass="oobeSystem"><component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64"><UserAccounts><LocalAccounts><LocalAccount xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State" wcm:action="add"><Name>${account}</Name></LocalAccount></LocalAccounts></UserAccounts></component></settings></unattend>`;

interface Setup {
  ctx: HelperContext;
  fs: GuestFs;
  root: string;
  warnings: string[];
}

async function windowsTree(
  guest: Omit<WindowsGuestOptions, 'label'>,
  files: Record<string, string | Buffer> = {},
  config: Partial<ConfigDocument> = {},
  properties: Record<string, string> = {},
): Promise<Setup> {
  const root = mkdtempSync(join(tmpdir(), 'snf-wtree-'));
  mkdirSync(join(root, 'Windows/System32/config'), { recursive: true });
  const hives = windowsHives({ label: 'dos', ...guest });
  writeHive(join(root, 'Windows/System32/config/SYSTEM'), hives.system);
  writeHive(join(root, 'Windows/System32/config/SOFTWARE'), hives.software);
  writeHive(join(root, 'Windows/System32/config/SAM'), hives.sam);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  const warnings: string[] = [];
  const ctx = {
    config: {
      operation: 'create',
      hostname: 'host-7.example.org',
      secrets: { password: 'pw-Unit-1' },
      windowsTimezone: 'Pacific Standard Time',
      personality: [],
      ...config,
    } as ConfigDocument,
    disk: '/dev/null',
    disks: [],
    properties: { OSFAMILY: Number(guest.version.split('.')[0]) < 6 ? 'windows-legacy' : 'windows', ...properties },
    target: root,
    mounts: [],
    windows: await inspectWindows(root),
    warn: (m: string) => warnings.push(m),
    info: () => undefined,
  } satisfies HelperContext;
  return { ctx, fs: new GuestFs(root), root, warnings };
}

const read = (root: string, path: string) => readFileSync(join(root, path), 'utf8');
const unattend = (root: string) => parseUnattend(read(root, 'Windows/Panther/unattend.xml'), 'result');

describe('Windows tasks on a directory tree', { skip: windowsToolsSkipReason() }, () => {
  it('the answer file: os_answer_file (UTF-16) over the image one, the image one unless IGNORE_UNATTEND, else built-in', async () => {
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(UNATTEND('fromparam'), 'utf16le')]);
    let s = await windowsTree(
      { version: '10.0' },
      { 'unattend.xml': UNATTEND('fromimage') },
      { answerFile: utf16.toString('base64') },
    );
    await installUnattend(s.ctx, s.fs);
    assert.deepEqual(localAccountNames(unattend(s.root)), ['fromparam']);

    s = await windowsTree({ version: '10.0' }, { 'Autounattend.xml': UNATTEND('fromimage') });
    await installUnattend(s.ctx, s.fs);
    assert.deepEqual(localAccountNames(unattend(s.root)), ['fromimage'], 'autounattend.xml, any case');

    s = await windowsTree(
      { version: '10.0' },
      { 'unattend.xml': UNATTEND('fromimage') },
      {},
      { IGNORE_UNATTEND: 'yes' },
    );
    await installUnattend(s.ctx, s.fs);
    assert.deepEqual(localAccountNames(unattend(s.root)), []);
    assert.equal(shellSetupValue(unattend(s.root), 'amd64', 'TimeZone'), 'Pacific Standard Time');
  });

  it('keeps an existing SetupComplete.cmd and runs its own commands after it', async () => {
    const s = await windowsTree(
      { version: '6.1', denyTsConnections: 1 },
      { 'Windows/Setup/Scripts/SetupComplete.cmd': '@echo off\r\ncall C:\\image\\own.cmd\r\n' },
    );
    await installUnattend(s.ctx, s.fs);
    await disableRemoteDesktopConnections(s.ctx, s.fs);
    const lines = read(s.root, 'Windows/Setup/Scripts/SetupComplete.cmd').split('\r\n');
    assert.deepEqual(lines.slice(0, 4), [
      '@echo off',
      'call C:\\image\\own.cmd',
      'rem snf-image: first-boot commands',
      'reg add "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server" /v fDenyTSConnections /t REG_DWORD /d 1 /f',
    ]);
    assert.equal(
      await readDword(s.ctx.windows!.hives.system, '\\ControlSet001\\Control\\Terminal Server', 'fDenyTSConnections'),
      1,
    );
  });

  it('ChangePassword accepts SAM and answer-file accounts, case-insensitively, and refuses others', async () => {
    const s = await windowsTree(
      { version: '10.0', users: ['Administrator', 'Guest'] },
      { 'unattend.xml': UNATTEND('Alice') },
    );
    await installUnattend(s.ctx, s.fs);
    await changePassword(s.ctx, s.fs, ['administrator', 'alice']);
    assert.match(
      read(s.root, 'Windows/SnfScripts/ChangeAdminPassword.cmd'),
      /net user "administrator" "pw-Unit-1"[^\r]*\r\nnet user "alice" "pw-Unit-1"/,
    );
    assert.deepEqual(
      specializeCommands(unattend(s.root), 'amd64').map((c) => c.path),
      ['C:\\Windows\\SnfScripts\\ChangeAdminPassword.cmd'],
    );
    await assert.rejects(
      changePassword(s.ctx, s.fs, ['mallory']),
      /USERS: mallory is not an account of the image \(SAM\) or of its answer file/,
    );
    await assert.rejects(
      changePassword({ ...s.ctx, config: { ...s.ctx.config, secrets: { authKeys: 'ssh-ed25519 AAAA' } } }, s.fs, [
        'Administrator',
      ]),
      /img_passwd is required to change Windows passwords/,
    );
  });

  it('product key and computer name for the image architecture; a bad name refused', async () => {
    const s = await windowsTree(
      { version: '6.1', arch: 'x86' },
      {},
      { secrets: { productKey: 'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE' } },
    );
    await installUnattend(s.ctx, s.fs);
    await assignHostname(s.ctx, s.fs);
    const doc = unattend(s.root);
    assert.equal(shellSetupValue(doc, 'x86', 'ProductKey'), 'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE');
    assert.equal(shellSetupValue(doc, 'x86', 'ComputerName'), 'host-7');
    assert.equal(shellSetupValue(doc, 'amd64', 'ProductKey'), undefined);
    await assert.rejects(
      assignHostname({ ...s.ctx, config: { ...s.ctx.config, hostname: '1234.example.org' } }, s.fs),
      /"1234", which is all digits/,
    );
  });

  it('diskpart at first boot unless OFFLINE_NTFSRESIZE or legacy', async () => {
    const s = await windowsTree({ version: '10.0' });
    await installUnattend(s.ctx, s.fs);
    await extendFilesystemAtFirstBoot(s.ctx, s.fs, 3);
    assert.equal(
      read(s.root, 'Windows/SnfScripts/ExtendFilesystem'),
      'select disk 0\r\nselect partition 3\r\nextend filesystem\r\nexit\r\n',
    );
    const offline = await windowsTree({ version: '10.0' }, {}, {}, { OFFLINE_NTFSRESIZE: 'yes' });
    await installUnattend(offline.ctx, offline.fs);
    await extendFilesystemAtFirstBoot(offline.ctx, offline.fs, 3);
    assert.equal(offline.fs.exists('/Windows/SnfScripts/ExtendFilesystem'), false);
    assert.ok(
      !specializeCommands(unattend(offline.root), 'amd64').some((c) => c.path.includes('diskpart')),
      'no diskpart command',
    );
  });

  it('legacy: a custom InstallFilesPath moves CmdLines.txt; one outside C:\\sysprep is refused', async () => {
    const inf = '[Unattended]\r\nInstallFilesPath=C:\\sysprep\\files\r\n[GuiUnattended]\r\nAdminPassword=kept\r\n';
    const s = await windowsTree({ version: '5.1', arch: 'x86' }, { 'sysprep/sysprep.inf': inf });
    await installUnattend(s.ctx, s.fs);
    await changePassword(s.ctx, s.fs, ['Administrator']);
    assert.deepEqual(new IniFile(read(s.root, 'sysprep/files/$OEM$/CmdLines.txt')).entries('Commands'), [
      '"C:\\Windows\\SnfScripts\\ChangeAdminPassword.cmd"',
      '"C:\\Windows\\Setup\\Scripts\\SetupComplete.cmd"',
    ]);
    assert.equal(
      new IniFile(read(s.root, 'sysprep/sysprep.inf')).get('GuiUnattended', 'AdminPassword'),
      'kept',
      'a set AdminPassword is left alone',
    );
    const bad = await windowsTree(
      { version: '5.1', arch: 'x86' },
      { 'sysprep/sysprep.inf': '[Unattended]\r\nInstallFilesPath=D:\\elsewhere\r\n' },
    );
    await assert.rejects(
      installUnattend(bad.ctx, bad.fs),
      /InstallFilesPath D:\\elsewhere must be a directory under C:\\sysprep/,
    );
  });

  it('a hive or answer file that is a link is not followed', async () => {
    const s = await windowsTree({ version: '10.0' });
    symlinkSync('/etc/passwd', join(s.root, 'unattend.xml'));
    await assert.rejects(
      installUnattend(s.ctx, s.fs),
      /\/unattend\.xml in the Windows image is a link; snf-image does not follow it/,
    );
    const outside = mkdtempSync(join(tmpdir(), 'snf-outside-'));
    renameSync(join(s.root, 'Windows/System32/config/SYSTEM'), join(outside, 'SYSTEM'));
    symlinkSync(join(outside, 'SYSTEM'), join(s.root, 'Windows/System32/config/SYSTEM'));
    await assert.rejects(inspectWindows(s.root), /\/Windows\/System32\/config\/SYSTEM in the Windows image is a link/);
  });

  it('a malformed image answer file fails InstallUnattend with where and why', async () => {
    const s = await windowsTree(
      { version: '10.0' },
      { 'unattend.xml': '<unattend>\n<settings pass="specialize">\n</unattend>' },
    );
    await assert.rejects(
      installUnattend(s.ctx, s.fs),
      /the answer file of the image \(C:\\unattend\.xml\) is not well-formed XML: line 3: <\/unattend> closes <settings>$/,
    );
  });
});
