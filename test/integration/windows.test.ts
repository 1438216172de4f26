/**
 * Windows guests end to end: `create` with the real helper VM on Windows-shaped disks
 * (test/support/windows-guest.ts), OSFAMILY and ROOT_PARTITION auto-detected, then the
 * deployed disk inspected on the host: answer files parsed, scripts compared line by line,
 * registry values read back with hivexget, NTFS size with ntfsinfo. Hostile images and
 * inputs must fail with a clear one-line reason.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { diskPartitions } from '../support/partition-table.ts';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import {
  hiveValue,
  makeWindowsGuest,
  mountWindowsDisk,
  windowsStartSector,
  windowsToolsSkipReason,
  type WindowsGuestOptions,
} from '../support/windows-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';
import { IniFile } from '../../helper/windows/sysprep-inf.ts';
import {
  localAccountNames,
  parseUnattend,
  shellSetupValue,
  specializeCommands,
} from '../../helper/windows/unattend.ts';
import { attribute, elementChildren, textOf } from '../../helper/windows/xml.ts';

const PASSWORD = 'Win-Secret-pw-8812';
const PRODUCT_KEY = 'ABCDE-FGH12-KLMNO-PQR34-UVWXY';
const skip = helperSkipReason() || windowsToolsSkipReason();
let helperDir = '';

const IMAGE_UNATTEND = `<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
    <settings pass="specialize">
        <component name="Microsoft-Windows-Deployment" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
            <RunSynchronous>
                <RunSynchronousCommand wcm:action="add">
                    <Order>1</Order>
                    <Path>cmd /c echo image &amp; command</Path>
                </RunSynchronousCommand>
            </RunSynchronous>
        </component>
    </settings>
    <settings pass="oobeSystem">
        <!-- the image's account -->
        <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
            <UserAccounts>
                <LocalAccounts>
                    <LocalAccount wcm:action="add">
                        <Name>snfuser</Name>
                        <Group>Administrators</Group>
                    </LocalAccount>
                </LocalAccounts>
            </UserAccounts>
        </component>
    </settings>
</unattend>
`;

const PERSONALITY = JSON.stringify([
  { path: '/Windows/System32/drivers/etc/hosts', contents: Buffer.from('10.0.0.1 db\r\n').toString('base64') },
  { path: '/Users/Administrator/Desktop/welcome.txt', contents: Buffer.from('hello').toString('base64') },
]);

const CLEANUP = [
  'rem snf-image: clean-up',
  `if exist C:\\Windows\\SnfScripts\\ChangeAdminPassword.cmd echo ${'X'.repeat(200)}> C:\\Windows\\SnfScripts\\ChangeAdminPassword.cmd`,
  'rmdir /S /Q C:\\Windows\\SnfScripts',
  'del /F /Q C:\\unattend.xml',
  'del /F /Q C:\\Windows\\Panther\\unattend.xml',
];

function crlfLines(text: string): string[] {
  assert.ok(text.endsWith('\r\n'), 'ends with CRLF');
  assert.ok(!/[^\r]\n/.test(text), 'every line ends with CRLF');
  return text.slice(0, -2).split('\r\n');
}

interface Deployed {
  code: number | null;
  stderr: string;
  disk: string;
  /** Start sector of the Windows partition. */
  start: number;
}

async function deploy(
  node: NodeFixture,
  guest: WindowsGuestOptions,
  env: Record<string, string> = {},
  diskMiB = 96,
): Promise<Deployed> {
  makeWindowsGuest(join(node.imageDir, 'windows.img'), guest);
  const disk = join(node.root, 'disk0');
  execFileSync('truncate', ['-s', `${diskMiB}M`, disk]);
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: 'windows.img',
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PASSWD: PASSWORD,
      DISK_0_PATH: disk,
      INSTANCE_NAME: 'win1.example.org',
      SNF_IMAGE_CONFIG: node.configFile,
      ...env,
    },
  });
  return { code: r.code, stderr: r.stderr, disk, start: windowsStartSector(guest) };
}

/** The helper's task timings and total, from the create log (reported as test diagnostics). */
function timings(stderr: string): string {
  const tasks = [...stderr.matchAll(/helper task timing task=(\S+) seconds=([\d.]+)/g)].map(
    (m) => `${m[1]} ${Number(m[2]).toFixed(1)}s`,
  );
  const total = /helper VM finished: SUCCESS seconds=([\d.]+)/.exec(stderr)?.[1];
  return `helper VM ${total ?? '?'} s: ${tasks.join(', ')}`;
}

/** Runs checks on the deployed NTFS volume, mounted read-only on the host. */
function inspect<T>(deployed: Deployed, check: (root: string) => T): T {
  const mnt = mkdtempSync(join(tmpdir(), 'snf-wmnt-'));
  const umount = mountWindowsDisk(deployed.disk, mnt, deployed.start);
  try {
    return check(mnt);
  } finally {
    umount();
  }
}

function partitionEnd(disk: string): number {
  const p = diskPartitions(disk).at(-1)!;
  return p.start + p.size;
}

function ntfsBytes(deployed: Deployed): number {
  const loop = execFileSync('losetup', ['-f', '--show', '-r', '-o', String(deployed.start * 512), deployed.disk])
    .toString()
    .trim();
  try {
    const info = execFileSync('ntfsinfo', ['-f', '-m', loop], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    return Number(/Cluster Size: (\d+)/.exec(info)?.[1]) * Number(/Volume Size in Clusters: (\d+)/.exec(info)?.[1]);
  } finally {
    execFileSync('losetup', ['-d', loop]);
  }
}

describe('Windows guests (real helper VM)', { skip, timeout: 2_400_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
  });
  // file:// answer files are read only from ANSWER_FILE_DIR: the tests write theirs into tmpdir().
  const node = (extra = '') =>
    makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\nANSWER_FILE_DIR=${tmpdir()}\n${extra}`);

  it('Windows 10 on GPT with its own unattend.xml: answer file, scripts and registry as Windows setup needs them', async (t) => {
    const n = node();
    const r = await deploy(
      n,
      {
        label: 'gpt',
        version: '10.0',
        denyTsConnections: 0,
        answerFile: IMAGE_UNATTEND,
        users: ['Administrator', 'Guest'],
      },
      {
        OSP_OS_PRODUCT_KEY: PRODUCT_KEY,
        OSP_IMG_PROPERTIES: '{"USERS": "Administrator snfuser"}',
        OSP_IMG_PERSONALITY: PERSONALITY,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    t.diagnostic(timings(r.stderr));
    assert.match(r.stderr, /OSFAMILY=windows ROOT_PARTITION=1/);
    assert.ok(!r.stderr.includes(PASSWORD) && !r.stderr.includes(PRODUCT_KEY), 'no secret in the log');
    // FixPartitionTable: the partition reaches the end of the disk (GPT backup header kept).
    assert.ok(partitionEnd(r.disk) > 90 * 2048, `partition grown (ends at sector ${partitionEnd(r.disk)})`);
    inspect(r, (root) => {
      const doc = parseUnattend(readFileSync(join(root, 'Windows/Panther/unattend.xml'), 'utf8'), 'deployed');
      assert.equal(shellSetupValue(doc, 'amd64', 'ComputerName'), 'win1');
      assert.equal(shellSetupValue(doc, 'amd64', 'ProductKey'), PRODUCT_KEY);
      assert.deepEqual(
        specializeCommands(doc, 'amd64').map((c) => [c.order, c.description, c.path]),
        [
          [1, '', 'cmd /c echo image & command'],
          [2, 'Extend the file system', 'diskpart.exe /s C:\\Windows\\SnfScripts\\ExtendFilesystem'],
          [3, 'Change user passwords', 'C:\\Windows\\SnfScripts\\ChangeAdminPassword.cmd'],
        ],
      );
      assert.deepEqual(localAccountNames(doc), ['snfuser'], "the image's accounts kept");
      const shell = elementChildren(
        elementChildren(doc.root, 'settings').find((s) => attribute(s, 'pass') === 'specialize')!,
        'component',
      ).find((c) => attribute(c, 'name') === 'Microsoft-Windows-Shell-Setup')!;
      assert.deepEqual(
        shell.attributes.filter(([k]) =>
          ['processorArchitecture', 'publicKeyToken', 'language', 'versionScope'].includes(k),
        ),
        [
          ['processorArchitecture', 'amd64'],
          ['publicKeyToken', '31bf3856ad364e35'],
          ['language', 'neutral'],
          ['versionScope', 'nonSxS'],
        ],
      );
      assert.deepEqual(crlfLines(readFileSync(join(root, 'Windows/SnfScripts/ChangeAdminPassword.cmd'), 'utf8')), [
        '@echo off',
        `net user "Administrator" "${PASSWORD}" /ACTIVE:YES /EXPIRES:NEVER /PASSWORDREQ:YES`,
        `net user "snfuser" "${PASSWORD}" /ACTIVE:YES /EXPIRES:NEVER /PASSWORDREQ:YES`,
      ]);
      assert.deepEqual(crlfLines(readFileSync(join(root, 'Windows/SnfScripts/ExtendFilesystem'), 'utf8')), [
        'select disk 0',
        'select partition 1',
        'extend filesystem',
        'exit',
      ]);
      assert.deepEqual(crlfLines(readFileSync(join(root, 'Windows/Setup/Scripts/SetupComplete.cmd'), 'utf8')), [
        '@echo off',
        'rem snf-image: first-boot commands',
        'reg add "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server" /v fDenyTSConnections /t REG_DWORD /d 0 /f',
        ...CLEANUP,
      ]);
      const system = join(root, 'Windows/System32/config/SYSTEM');
      assert.equal(hiveValue(system, '\\ControlSet001\\Control\\Terminal Server', 'fDenyTSConnections'), '1');
      assert.equal(
        hiveValue(system, '\\ControlSet001\\Control\\Terminal Server', 'TSEnabled'),
        '1',
        'other values of the key kept',
      );
      assert.equal(hiveValue(system, '\\ControlSet001\\Control\\Terminal Server', 'ProductVersion'), '5.1');
      assert.equal(
        hiveValue(system, '\\ControlSet002\\Control\\Terminal Server', 'fDenyTSConnections'),
        '7',
        'only the current control set changed',
      );
      assert.ok(
        existsSync(join(root, 'unattend.xml')),
        "the image's C:\\unattend.xml stays (SetupComplete.cmd deletes it)",
      );
      // EnforcePersonality on NTFS: written as given, the replaced file kept as .bak.<seconds>.
      assert.equal(readFileSync(join(root, 'Windows/System32/drivers/etc/hosts'), 'utf8'), '10.0.0.1 db\r\n');
      const backups = readdirSync(join(root, 'Windows/System32/drivers/etc')).filter((f) =>
        /^hosts\.bak\.\d+$/.test(f),
      );
      assert.equal(backups.length, 1, 'one backup of the replaced file');
      assert.equal(
        readFileSync(join(root, 'Windows/System32/drivers/etc', backups[0]!), 'utf8'),
        '127.0.0.1 localhost\r\n',
      );
      assert.equal(readFileSync(join(root, 'Users/Administrator/Desktop/welcome.txt'), 'utf8'), 'hello');
    });
  });

  it('Windows 7 (x86, MBR, System Reserved partition first) without an answer file: the built-in one with WINDOWS_TIMEZONE; OFFLINE_NTFSRESIZE grows NTFS in the helper; rename', async (t) => {
    const n = node('WINDOWS_TIMEZONE="W. Europe Standard Time"\n');
    const r = await deploy(
      n,
      { label: 'dos', version: '6.1', arch: 'x86', systemReserved: true },
      { OSP_IMG_PROPERTIES: '{"OFFLINE_NTFSRESIZE": "yes"}' },
    );
    assert.equal(r.code, 0, r.stderr);
    t.diagnostic(timings(r.stderr));
    assert.match(r.stderr, /OSFAMILY=windows ROOT_PARTITION=2/, 'the System Reserved NTFS partition is not the root');
    const ntfs = ntfsBytes(r);
    assert.ok(ntfs > 85 * 1024 * 1024, `NTFS grown offline to ${ntfs} bytes`);
    inspect(r, (root) => {
      const doc = parseUnattend(readFileSync(join(root, 'Windows/Panther/unattend.xml'), 'utf8'), 'deployed');
      assert.equal(shellSetupValue(doc, 'x86', 'ComputerName'), 'win1');
      assert.equal(shellSetupValue(doc, 'x86', 'TimeZone'), 'W. Europe Standard Time');
      assert.equal(shellSetupValue(doc, 'amd64', 'ComputerName'), '*', 'the other architecture untouched');
      assert.equal(shellSetupValue(doc, 'x86', 'ProductKey'), undefined, 'no product key given');
      assert.deepEqual(
        specializeCommands(doc, 'x86').map((c) => c.description),
        ['Install updates automatically', 'Do not ask for a user account at first boot', 'Change user passwords'],
      );
      assert.ok(
        !existsSync(join(root, 'Windows/SnfScripts/ExtendFilesystem')),
        'no diskpart at first boot with OFFLINE_NTFSRESIZE',
      );
      const oobe = elementChildren(doc.root, 'settings').find((s) => attribute(s, 'pass') === 'oobeSystem')!;
      const shell = elementChildren(oobe, 'component').find(
        (c) =>
          attribute(c, 'name') === 'Microsoft-Windows-Shell-Setup' && attribute(c, 'processorArchitecture') === 'x86',
      )!;
      assert.equal(textOf(elementChildren(elementChildren(shell, 'OOBE')[0]!, 'HideEULAPage')[0]!), 'true');
      assert.deepEqual(crlfLines(readFileSync(join(root, 'Windows/SnfScripts/ChangeAdminPassword.cmd'), 'utf8')), [
        '@echo off',
        `net user "Administrator" "${PASSWORD}" /ACTIVE:YES /EXPIRES:NEVER /PASSWORDREQ:YES`,
      ]);
      // fDenyTSConnections was absent: first boot deletes the value again.
      assert.ok(
        crlfLines(readFileSync(join(root, 'Windows/Setup/Scripts/SetupComplete.cmd'), 'utf8')).includes(
          'reg delete "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server" /v fDenyTSConnections /f',
        ),
      );
      assert.equal(
        hiveValue(
          join(root, 'Windows/System32/config/SYSTEM'),
          '\\ControlSet001\\Control\\Terminal Server',
          'fDenyTSConnections',
        ),
        '1',
      );
    });
    // rename: the answer file is spent once Windows has booted; the name goes to the registry.
    const renamed = await runScript('rename', {
      env: {
        ...CREATE_ENV,
        DISK_0_PATH: r.disk,
        INSTANCE_NAME: 'win2.example.org',
        OLD_INSTANCE_NAME: 'win1.example.org',
        OSP_IMG_ID: 'windows.img',
        OSP_IMG_FORMAT: 'diskdump',
        SNF_IMAGE_CONFIG: n.configFile,
      },
    });
    assert.equal(renamed.code, 0, renamed.stderr);
    inspect(r, (root) => {
      const system = join(root, 'Windows/System32/config/SYSTEM');
      assert.equal(hiveValue(system, '\\ControlSet001\\Control\\ComputerName\\ComputerName', 'ComputerName'), 'WIN2');
      assert.equal(hiveValue(system, '\\ControlSet001\\Services\\Tcpip\\Parameters', 'NV Hostname'), 'win2');
      assert.equal(hiveValue(system, '\\ControlSet001\\Services\\Tcpip\\Parameters', 'Hostname'), 'win2');
      const doc = parseUnattend(readFileSync(join(root, 'Windows/Panther/unattend.xml'), 'utf8'), 'deployed');
      assert.equal(shellSetupValue(doc, 'x86', 'ComputerName'), 'win1', 'rename leaves the answer file alone');
    });
  });

  it('Windows XP (legacy, MBR): sysprep.inf, CmdLines.txt and the offline NTFS resize', async (t) => {
    const n = node();
    const inf =
      '; image sysprep.inf\r\n[Unattended]\r\nOemSkipEula=Yes\r\nInstallFilesPath=C:\\sysprep\\i386\r\n\r\n[GuiUnattended]\r\nAdminPassword=\r\nTimeZone=110\r\n\r\n[UserData]\r\nFullName="Image Owner"\r\nComputerName=XPTEMPLATE\r\n';
    const r = await deploy(
      n,
      { label: 'dos', version: '5.1', arch: 'x86', answerFile: inf, denyTsConnections: 1 },
      { OSP_OS_PRODUCT_KEY: PRODUCT_KEY },
    );
    assert.equal(r.code, 0, r.stderr);
    t.diagnostic(timings(r.stderr));
    assert.match(r.stderr, /OSFAMILY=windows-legacy ROOT_PARTITION=1/);
    assert.ok(!r.stderr.includes(PASSWORD) && !r.stderr.includes(PRODUCT_KEY), 'no secret in the log');
    assert.ok(ntfsBytes(r) > 90 * 1024 * 1024, 'NTFS grown offline (legacy Windows has no diskpart extend)');
    inspect(r, (root) => {
      const text = readFileSync(join(root, 'sysprep/sysprep.inf'), 'utf8');
      assert.ok(!text.includes(PASSWORD), 'the password is not in sysprep.inf');
      const sysprep = new IniFile(text);
      assert.equal(sysprep.get('UserData', 'ComputerName'), 'win1');
      assert.equal(sysprep.get('UserData', 'ProductKey'), PRODUCT_KEY);
      assert.equal(sysprep.get('UserData', 'FullName'), 'Image Owner', "the image's settings kept");
      assert.equal(sysprep.get('GuiUnattended', 'TimeZone'), '110');
      assert.equal(sysprep.get('GuiUnattended', 'AdminPassword'), '*');
      assert.equal(sysprep.get('GuiUnattended', 'EncryptedAdminPassword'), 'No');
      assert.ok(text.startsWith('; image sysprep.inf\r\n'), 'comments kept');
      const cmdLines = new IniFile(readFileSync(join(root, 'sysprep/i386/$OEM$/CmdLines.txt'), 'utf8'));
      assert.deepEqual(cmdLines.entries('Commands'), [
        '"C:\\Windows\\SnfScripts\\ChangeAdminPassword.cmd"',
        '"C:\\Windows\\Setup\\Scripts\\SetupComplete.cmd"',
      ]);
      assert.deepEqual(crlfLines(readFileSync(join(root, 'Windows/SnfScripts/ChangeAdminPassword.cmd'), 'utf8')), [
        '@echo off',
        `net user "Administrator" "${PASSWORD}" /ACTIVE:YES /EXPIRES:NEVER /PASSWORDREQ:YES`,
      ]);
      assert.ok(!existsSync(join(root, 'Windows/Panther/unattend.xml')), 'no unattend.xml for XP');
      assert.ok(
        crlfLines(readFileSync(join(root, 'Windows/Setup/Scripts/SetupComplete.cmd'), 'utf8')).includes(
          'reg add "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server" /v fDenyTSConnections /t REG_DWORD /d 1 /f',
        ),
      );
    });
  });

  it('hostile images and inputs fail with one clear line: not generalized, bad computer name, malformed answer file, hibernated, unknown user', async () => {
    const cases: Array<[string, WindowsGuestOptions, Record<string, string>, RegExp]> = [
      [
        'not generalized',
        { label: 'gpt', version: '10.0', generalized: false },
        {},
        /the Windows image is not generalized \(ImageState is IMAGE_STATE_COMPLETE/,
      ],
      [
        'computer name',
        { label: 'dos', version: '6.1' },
        { INSTANCE_NAME: 'averyveryverylongname.example.org' },
        /Windows computer name "averyveryverylongname", which is longer than 15 bytes/,
      ],
      [
        'answer file',
        { label: 'dos', version: '6.1' },
        { OSP_OS_ANSWER_FILE: `file://${join(tmpdir(), `snf-bad-unattend-${process.pid}.xml`)}` },
        /the answer file from os_answer_file is not well-formed XML: line 4: <\/component> closes <settings>/,
      ],
      [
        'hibernated',
        { label: 'dos', version: '6.1', hibernated: true },
        {},
        /the NTFS volume \/dev\/\S+ is hibernated: Windows was hibernated or shut down with Fast Startup/,
      ],
      [
        'unknown user',
        { label: 'dos', version: '6.1' },
        { OSP_IMG_PROPERTIES: '{"USERS": "Administrator nosuchuser"}' },
        /USERS: nosuchuser is not an account of the image/,
      ],
    ];
    writeFileSync(
      join(tmpdir(), `snf-bad-unattend-${process.pid}.xml`),
      '<?xml version="1.0"?>\n<unattend xmlns="urn:schemas-microsoft-com:unattend">\n  <settings pass="specialize">\n  </component>\n</unattend>\n',
    );
    for (const [name, guest, env, expected] of cases) {
      const r = await deploy(node(), guest, env);
      assert.notEqual(r.code, 0, `${name}: create fails`);
      assert.match(r.stderr, expected, name);
      assert.ok(!r.stderr.includes(PASSWORD), `${name}: no password in the error`);
    }
  });
});
