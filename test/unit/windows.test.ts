/**
 * The Windows building blocks without a VM: the strict XML reader/writer, answer-file
 * edits, sysprep.inf / CmdLines.txt, NetBIOS names, password and diskpart scripts, and the
 * registry through hivex on a hive made by the test fixture (skipped without hivex).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { computerNameFor } from '../../helper/windows/computer-name.ts';
import {
  deleteValue,
  listSubkeys,
  parseRegLine,
  readDword,
  readKey,
  readString,
  writeValues,
} from '../../helper/windows/hive.ts';
import { builtInSysprepInf, IniFile } from '../../helper/windows/sysprep-inf.ts';
import {
  addSpecializeCommand,
  AnswerFileError,
  builtInUnattend,
  localAccountNames,
  parseUnattend,
  serializeUnattend,
  setShellSetup,
  shellSetupValue,
  specializeCommands,
} from '../../helper/windows/unattend.ts';
import { decodeXmlBytes, parseXml, writeXml, XmlError } from '../../helper/windows/xml.ts';
import { cmdLinesPath, extendFilesystemScript, passwordScript } from '../../helper/os/windows.ts';
import { checkFamily, familyOfVersion, inspectWindows, checkSysprepped } from '../../helper/windows/guest.ts';
import { ntfsDirty, ntfsResize } from '../../helper/windows/ntfs.ts';
import { execFileSync } from 'node:child_process';
import { emptyHive, windowsHives, windowsToolsSkipReason, writeHive } from '../support/windows-guest.ts';
import { mkdirSync } from 'node:fs';

describe('XML reader and writer', () => {
  it('reads and writes back a document unchanged except for the declaration', () => {
    const text =
      '<?xml version="1.0" encoding="UTF-8"?>\n<!-- head -->\n<a x="1" y=\'&quot;2&quot;\'>\n  <b>t &amp; &lt;u&gt; &#65;&#x42;</b>\n  <c/><![CDATA[<raw>]]><?pi body?>\n</a>\n';
    const doc = parseXml(text);
    assert.equal(
      writeXml(doc),
      '<?xml version="1.0" encoding="utf-8"?>\n<!-- head -->\n<a x="1" y="&quot;2&quot;">\n  <b>t &amp; &lt;u&gt; AB</b>\n  <c /><![CDATA[<raw>]]><?pi body?>\n</a>\n',
    );
    assert.deepEqual(parseXml(writeXml(doc)), doc, 'round trip');
  });

  it('decodes UTF-16 and UTF-8 byte-order marks', () => {
    const xml = '<unattend>é</unattend>';
    assert.equal(decodeXmlBytes(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(xml, 'utf16le')])), xml);
    const be = Buffer.from(xml, 'utf16le');
    be.swap16();
    assert.equal(decodeXmlBytes(Buffer.concat([Buffer.from([0xfe, 0xff]), be])), xml);
    assert.equal(decodeXmlBytes(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(xml)])), xml);
  });

  const malformed: Array<[string, string, RegExp]> = [
    ['mismatched tag', '<a>\n<b></a>', /^line 2: <\/a> closes <b>$/],
    ['unclosed', '<a><b></b>', /^line 1: <a> is not closed$/],
    ['unknown entity', '<a>&nbsp;</a>', /unknown entity '&nbsp;'/],
    ['bare ampersand', '<a>x & y</a>', /unterminated entity reference/],
    [
      'DTD',
      '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
      /document type declarations are not allowed/,
    ],
    ['two roots', '<a/><b/>', /content after the root element/],
    ['empty', '   ', /no root element/],
    ['repeated attribute', '<a x="1" x="2"/>', /attribute x repeated/],
    ['unquoted attribute', '<a x=1/>', /has no quoted value/],
    ['late declaration', '<!-- c --><?xml version="1.0"?><a/>', /the XML declaration must come first/],
    ['text before root', 'hello <a/>', /text before the root element/],
    ['bad name', '<1a/>', /invalid name '1a'/],
    ['unterminated comment', '<a><!-- x </a>', /unterminated comment/],
  ];
  for (const [name, text, expected] of malformed) {
    it(`refuses malformed XML: ${name}`, () => {
      assert.throws(
        () => parseXml(text),
        (e: unknown) => e instanceof XmlError && expected.test(e.message),
      );
    });
  }
});

const IMAGE = `<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
    <settings pass="specialize">
        <component name="Microsoft-Windows-Deployment" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
            <RunSynchronous>
                <RunSynchronousCommand wcm:action="add">
                    <Order>4</Order>
                    <Path>cmd /c one</Path>
                </RunSynchronousCommand>
            </RunSynchronous>
        </component>
    </settings>
    <settings pass="oobeSystem">
        <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64">
            <UserAccounts><LocalAccounts>
                <LocalAccount wcm:action="add"><Name>alice</Name></LocalAccount>
                <LocalAccount wcm:action="remove"><Name>bob</Name></LocalAccount>
            </LocalAccounts></UserAccounts>
        </component>
    </settings>
</unattend>
`;

describe('answer files (unattend.xml)', () => {
  it('adds specialize commands after the highest Order, once', () => {
    const doc = parseUnattend(IMAGE, 'test');
    assert.equal(
      addSpecializeCommand(doc, 'amd64', {
        description: 'Change user passwords',
        path: 'C:\\Windows\\SnfScripts\\ChangeAdminPassword.cmd',
      }),
      true,
    );
    assert.equal(
      addSpecializeCommand(doc, 'amd64', {
        description: 'again',
        path: 'c:\\windows\\snfscripts\\changeadminpassword.cmd',
      }),
      false,
      'already present (case-insensitive)',
    );
    const back = parseUnattend(serializeUnattend(doc), 'back');
    assert.deepEqual(specializeCommands(back, 'amd64'), [
      { order: 4, description: '', path: 'cmd /c one' },
      { order: 5, description: 'Change user passwords', path: 'C:\\Windows\\SnfScripts\\ChangeAdminPassword.cmd' },
    ]);
    assert.deepEqual(specializeCommands(back, 'x86'), [], 'other architectures untouched');
  });

  it('creates the settings pass and components it needs, with the component attributes', () => {
    const doc = parseUnattend('<unattend xmlns="urn:schemas-microsoft-com:unattend"/>', 'empty');
    setShellSetup(doc, 'x86', 'ComputerName', 'web-01');
    setShellSetup(doc, 'x86', 'ProductKey', 'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE');
    setShellSetup(doc, 'x86', 'ComputerName', 'web-02');
    addSpecializeCommand(doc, 'x86', {
      description: 'Extend the file system',
      path: 'diskpart.exe /s C:\\Windows\\SnfScripts\\ExtendFilesystem',
    });
    const text = serializeUnattend(doc);
    assert.ok(
      text.split('\n').every((l) => l === '' || l.endsWith('\r')),
      'CRLF line ends',
    );
    const back = parseUnattend(text, 'back');
    assert.equal(shellSetupValue(back, 'x86', 'ComputerName'), 'web-02');
    assert.equal(shellSetupValue(back, 'x86', 'ProductKey'), 'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE');
    assert.deepEqual(
      specializeCommands(back, 'x86').map((c) => c.order),
      [1],
    );
    assert.match(
      text,
      /<component name="Microsoft-Windows-Shell-Setup" processorArchitecture="x86" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS" xmlns:wcm="http:\/\/schemas.microsoft.com\/WMIConfig\/2002\/State" xmlns:xsi="http:\/\/www.w3.org\/2001\/XMLSchema-instance">/,
    );
    assert.match(text, /<RunSynchronousCommand wcm:action="add">/);
  });

  it('lists the accounts the answer file adds', () => {
    assert.deepEqual(localAccountNames(parseUnattend(IMAGE, 'test')), ['alice']);
  });

  it('the built-in answer file has both architectures and escapes the time zone', () => {
    const doc = parseUnattend(builtInUnattend('A & B <Time>'), 'built-in');
    for (const arch of ['amd64', 'x86'] as const) {
      assert.equal(shellSetupValue(doc, arch, 'TimeZone'), 'A & B <Time>');
      assert.equal(shellSetupValue(doc, arch, 'ComputerName'), '*');
      assert.deepEqual(
        specializeCommands(doc, arch).map((c) => c.order),
        [1, 2],
      );
    }
    assert.match(specializeCommands(doc, 'amd64')[1]!.path, /UnattendCreatedUser \/t REG_DWORD \/d 1/);
  });

  it('a malformed or foreign answer file is refused with the reason', () => {
    assert.throws(
      () => parseUnattend('<unattend><settings></unattend>', 'of the image'),
      (e: unknown) =>
        e instanceof AnswerFileError &&
        /^the answer file of the image is not well-formed XML: line 1: <\/unattend> closes <settings>$/.test(e.message),
    );
    assert.throws(() => parseUnattend('<html/>', 'x'), /has the root element <html>, not <unattend>/);
  });
});

describe('sysprep.inf and CmdLines.txt', () => {
  it('edits keys case-insensitively and keeps the rest of the file', () => {
    const inf = new IniFile('; comment\r\n[UserData]\r\nfullname="A B"\r\ncomputername=OLD\r\n\r\n[Other]\r\nx=1\r\n');
    inf.set('USERDATA', 'ComputerName', 'NEW');
    inf.set('UserData', 'ProductKey', 'K');
    inf.set('GuiUnattended', 'AdminPassword', '*');
    assert.equal(inf.get('userdata', 'FULLNAME'), 'A B');
    assert.equal(
      inf.toString(),
      '; comment\r\n[UserData]\r\nfullname="A B"\r\nComputerName=NEW\r\nProductKey=K\r\n\r\n[Other]\r\nx=1\r\n\r\n[GuiUnattended]\r\nAdminPassword=*\r\n',
    );
  });

  it('CmdLines.txt lives under InstallFilesPath, which must stay under C:\\sysprep', () => {
    assert.equal(cmdLinesPath(new IniFile('')), '/sysprep/i386/$OEM$/CmdLines.txt');
    assert.equal(
      cmdLinesPath(new IniFile('[Unattended]\nInstallFilesPath=C:\\SYSPREP\\files\\')),
      '/SYSPREP/files/$OEM$/CmdLines.txt',
    );
    assert.throws(
      () => cmdLinesPath(new IniFile('[Unattended]\nInstallFilesPath=C:\\Windows')),
      /InstallFilesPath C:\\Windows must be a directory under C:\\sysprep/,
    );
    assert.throws(
      () => cmdLinesPath(new IniFile('[Unattended]\nInstallFilesPath=C:\\sysprep\\..\\Windows')),
      /must be a directory under/,
    );
  });

  it('the built-in sysprep.inf takes a numeric time zone only', () => {
    assert.match(builtInSysprepInf('85'), /\r\nTimeZone=85\r\n/);
    assert.doesNotMatch(builtInSysprepInf('GMT Standard Time'), /TimeZone/);
    assert.equal(new IniFile(builtInSysprepInf('85')).get('UserData', 'ComputerName'), '*');
  });

  it('remove and append keep a section in order', () => {
    const f = new IniFile('[Commands]\r\n"a"\r\n"z"\r\n');
    f.remove('Commands', '"z"');
    f.append('Commands', '"b"');
    f.append('Commands', '"z"');
    assert.deepEqual(f.entries('Commands'), ['"a"', '"b"', '"z"']);
  });
});

describe('computer names, scripts', () => {
  it('takes the first label and enforces the NetBIOS rules', () => {
    assert.equal(computerNameFor('web-01.example.org'), 'web-01');
    assert.equal(computerNameFor('ABCDEFGHIJKLMNO'), 'ABCDEFGHIJKLMNO');
    assert.throws(
      () => computerNameFor('abcdefghijklmnop.example.org'),
      /"abcdefghijklmnop", which is longer than 15 bytes/,
    );
    assert.throws(() => computerNameFor('12345.example.org'), /which is all digits/);
    assert.throws(() => computerNameFor('web_01'), /contains "_"/);
    assert.throws(() => computerNameFor('a*b'), /contains "\*"/);
    assert.throws(() => computerNameFor('.example.org'), /which is empty/);
  });

  it('the password script quotes users and password; % doubled; quotes refused without echoing the password', () => {
    assert.equal(
      passwordScript(['Administrator', 'alice'], 'p%w&d'),
      '@echo off\r\nnet user "Administrator" "p%%w&d" /ACTIVE:YES /EXPIRES:NEVER /PASSWORDREQ:YES\r\nnet user "alice" "p%%w&d" /ACTIVE:YES /EXPIRES:NEVER /PASSWORDREQ:YES\r\n',
    );
    assert.throws(
      () => passwordScript(['a'], 'bad"quote-secret'),
      (e: unknown) =>
        e instanceof Error && /cannot contain double quotes/.test(e.message) && !e.message.includes('quote-secret'),
    );
  });

  it('diskpart extends the grown partition', () => {
    assert.equal(extendFilesystemScript(2), 'select disk 0\r\nselect partition 2\r\nextend filesystem\r\nexit\r\n');
  });

  it('NT 6 and later are windows, NT 5 windows-legacy; OSFAMILY must match the image', () => {
    assert.equal(familyOfVersion('10.0'), 'windows');
    assert.equal(familyOfVersion('6.0'), 'windows');
    assert.equal(familyOfVersion('5.2'), 'windows-legacy');
    const info = {
      family: 'windows-legacy',
      version: '5.1',
      arch: 'x86',
      controlSet: 'ControlSet001',
      hives: { system: '', software: '', sam: '' },
    } as const;
    assert.throws(
      () => checkFamily(info, 'windows'),
      /OSFAMILY is windows, but the image is Windows NT 5\.1 \(windows-legacy\)/,
    );
    checkFamily(info, 'windows-legacy');
  });
});

describe('registry hives (hivex)', { skip: windowsToolsSkipReason() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'snf-hive-'));

  it('the generated empty hive opens in hivex and takes keys and values', async () => {
    const hive = join(dir, 'empty');
    writeFileSync(hive, emptyHive());
    assert.deepEqual(await listSubkeys(hive, '\\'), []);
    await writeValues(hive, '\\A\\B C', {
      S: { type: 'string', value: 'x y' },
      D: { type: 'dword', value: 7 },
      U: { type: 'string', value: 'héllo' },
    });
    assert.deepEqual(await listSubkeys(hive, '\\'), ['A']);
    assert.equal(await readString(hive, '\\a\\b c', 's'), 'x y', 'names are case-insensitive');
    assert.equal(await readDword(hive, '\\A\\B C', 'D'), 7);
    assert.equal(await readString(hive, '\\A\\B C', 'U'), 'héllo');
    await writeValues(hive, '\\A\\B C', { d: { type: 'dword', value: 1 } });
    const values = await readKey(hive, '\\A\\B C');
    assert.deepEqual([...values!.keys()].sort(), ['S', 'U', 'd'], 'other values kept, the changed one replaced');
    await deleteValue(hive, '\\A\\B C', 'S');
    assert.equal(await readString(hive, '\\A\\B C', 'S'), undefined);
    assert.equal(await readKey(hive, '\\Missing'), undefined);
  });

  it('parses hivexget listings', () => {
    assert.deepEqual(parseRegLine('"a\\"b"="c\\\\d"'), ['a"b', { type: 'string', value: 'c\\d' }]);
    assert.deepEqual(parseRegLine('"n"=dword:0000000a'), ['n', { type: 'dword', value: 10 }]);
    assert.deepEqual(parseRegLine('"m"=hex(7):61,00,00,00'), [
      'm',
      { type: 'raw', regType: 7, bytes: Buffer.from([0x61, 0, 0, 0]) },
    ]);
    assert.equal(parseRegLine('garbage'), undefined);
  });

  for (const [version, family, arch] of [
    ['10.0', 'windows', 'amd64'],
    ['6.1', 'windows', 'x86'],
    ['5.2', 'windows-legacy', 'x86'],
  ] as const) {
    it(`reads NT ${version} version, architecture and sysprep state from the hives`, async () => {
      const root = mkdtempSync(join(dir, 'win-'));
      mkdirSync(join(root, 'WINDOWS/system32/config'), { recursive: true });
      const hives = windowsHives({ label: 'dos', version, arch: arch === 'amd64' ? 'AMD64' : 'x86' });
      writeHive(join(root, 'WINDOWS/system32/config/system'), hives.system);
      writeHive(join(root, 'WINDOWS/system32/config/software'), hives.software);
      writeHive(join(root, 'WINDOWS/system32/config/sam'), hives.sam);
      const info = await inspectWindows(root);
      assert.deepEqual(
        [info.version, info.family, info.arch, info.controlSet],
        [version, family, arch, 'ControlSet001'],
      );
      await checkSysprepped(info);
      const bad = windowsHives({ label: 'dos', version, generalized: false });
      writeHive(info.hives.system, bad.system);
      writeHive(info.hives.software, bad.software);
      await assert.rejects(
        checkSysprepped(info),
        family === 'windows'
          ? /not generalized \(ImageState is IMAGE_STATE_COMPLETE/
          : /not sysprepped \(SYSTEM\\Setup SystemSetupInProgress=0, MiniSetupInProgress=0/,
      );
      assert.ok(readFileSync(info.hives.sam).subarray(0, 4).equals(Buffer.from('regf')));
    });
  }
});

describe('offline NTFS resize (ntfsresize on an image file)', { skip: windowsToolsSkipReason() }, () => {
  it('grows a clean volume; a dirty one is refused unless NOCHECK, which also clears the flag', async () => {
    const image = join(mkdtempSync(join(tmpdir(), 'snf-ntfs-')), 'ntfs.img');
    execFileSync('truncate', ['-s', '32M', image]);
    execFileSync('mkntfs', ['-F', '-Q', '-q', image], { stdio: 'ignore' });
    execFileSync('truncate', ['-s', '64M', image]);
    assert.equal(await ntfsDirty(image), false);
    await ntfsResize(image, false);
    const size = () => {
      const info = execFileSync('ntfsinfo', ['-f', '-m', image], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
      return Number(/Cluster Size: (\d+)/.exec(info)?.[1]) * Number(/Volume Size in Clusters: (\d+)/.exec(info)?.[1]);
    };
    assert.ok(size() > 60 * 1024 * 1024, `grown to ${size()}`);
    // ntfsresize leaves the volume scheduled for chkdsk (dirty), as Windows would want.
    assert.equal(await ntfsDirty(image), true);
    execFileSync('truncate', ['-s', '80M', image]);
    await assert.rejects(
      ntfsResize(image, false),
      /is marked dirty; Windows must check it \(chkdsk\) before it can be resized offline/,
    );
    await ntfsResize(image, true);
    assert.equal(await ntfsDirty(image), false, 'NOCHECK cleared the dirty flag');
    assert.ok(size() > 76 * 1024 * 1024);
  });
});
