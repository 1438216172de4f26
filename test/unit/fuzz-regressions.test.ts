/**
 * Regression tests for what the fuzzing of hostile input found (test/unit/fuzz-*.test.ts),
 * or what writing it showed (the sidecar's size): each a counterexample kept as a plain test.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pack } from 'tar-stream';
import { loadConfig } from '../../src/config/load.ts';
import { parseShellConf } from '../../src/config/shell-conf.ts';
import { parseBsdDevice } from '../../helper/bsd/devices.ts';
import { rcConfValue, rcConfWith } from '../../helper/bsd/rc-conf.ts';
import { readConfigFloppy } from '../../helper/config-floppy.ts';
import { parseSfdiskJson } from '../../helper/disks.ts';
import { TaskError } from '../../helper/exec.ts';
import { netplanUsesNetworkManager } from '../../helper/network/apply.ts';
import { authorizedKeysPath } from '../../helper/os/linux.ts';
import { parseGroup, parsePasswd } from '../../helper/guest-files.ts';
import { networkModel } from '../../helper/network/model.ts';
import { cmdLinesPath } from '../../helper/os/windows.ts';
import { IniFile } from '../../helper/windows/sysprep-inf.ts';
import { decodeXmlBytes, parseXml, XmlError } from '../../helper/windows/xml.ts';
import { parseConfigDocument } from '../../src/ganeti/config-url.ts';
import { parseGanetiEnv } from '../../src/ganeti/env.ts';
import { parseConfigDocument as parseHelperDocument } from '../../src/helper-vm/config-document.ts';
import { parseOsParams, wrapSecrets } from '../../src/ganeti/params.ts';
import { digestFromSidecar, findInSums } from '../../src/image/checksum.ts';
import { filesystemSize, MAGIC_BYTES } from '../../src/image/magic.ts';
import { synthesizePrefix } from '../../src/image/mbr.ts';
import { validateJson } from '../../src/schemas/validate.ts';
import { oneLine, UserError, ValidationError } from '../../src/util/errors.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';
import { assertLinearTime, LINE_BREAK, readBudget, repeat } from '../support/fuzz.ts';

/** The error `fn` throws (it must throw). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail('expected an error');
}

describe('one-line error messages (src/util/errors.ts)', () => {
  it('joins lines broken by any Unicode line break, not only LF', () => {
    for (const br of ['\n', '\r', '\r\n', '\v', '\f', '\u0085', '\u2028', '\u2029'])
      assert.equal(oneLine(`first${br} second `), 'first second');
    assert.equal(new UserError('a \u0085\n b').message, 'a b');
  });

  it('a configuration key with a NEL is named on one line', () => {
    const error = thrown(() => parseShellConf('A\u0085B=1', 'snf-image.conf'));
    assert.ok(error instanceof UserError);
    assert.ok(!LINE_BREAK.test(error.message), JSON.stringify(error.message));
    assert.match(error.message, /^snf-image\.conf:1: 'A B' is not a valid variable name$/);
  });

  it('takes time linear in the message (a key of many blanks)', () => {
    assertLinearTime(
      (n) => `$${' '.repeat(n)}=`,
      (text) => parseShellConf(text, 'snf-image.conf'),
    );
  });

  it('takes time linear in the file (many backslash-newline continuations; seed 1351286843)', () => {
    assertLinearTime(
      // Three characters more per continuation than the seed's piece: the quadratic join shows sooner.
      (n) => '\\\n$$$$'.repeat(n),
      (text) => {
        try {
          parseShellConf(text, 'snf-image.conf');
        } catch (error) {
          if (!(error instanceof UserError)) throw error;
        }
      },
    );
  });
});

describe('filesystem dumps larger than an MBR partition (src/image/magic.ts, src/image/mbr.ts)', () => {
  const ext = (blocksLo: number, logBlockSize: number, blocksHi = 0) => {
    const head = Buffer.alloc(MAGIC_BYTES);
    head.writeUInt32LE(blocksLo, 1024 + 4);
    head.writeUInt32LE(logBlockSize, 1024 + 24);
    head.writeUInt16LE(0xef53, 1024 + 56);
    head.writeUInt32LE(blocksHi === 0 ? 0 : 0x80, 1024 + 0x60);
    head.writeUInt32LE(blocksHi, 1024 + 0x150);
    return head;
  };

  it('an ext superblock of 2^32-1 4 KiB blocks is refused with a UserError, not a RangeError', () => {
    const size = filesystemSize(ext(0xffffffff, 2), 'ext');
    assert.equal(size, 0xffffffff * 4096);
    const error = thrown(() => synthesizePrefix(size as number, 'ext', undefined));
    assert.ok(error instanceof UserError, `${error.constructor.name}: ${error.message}`);
    assert.equal(
      error.message,
      'img_id: the ext filesystem (17592186040320 bytes) is larger than an MBR partition can hold (2 TiB)',
    );
  });

  it('an NTFS boot sector of 1049-byte sectors is refused the same way', () => {
    const head = Buffer.alloc(MAGIC_BYTES);
    head.write('NTFS    ', 3, 'latin1');
    head.writeUInt16LE(1049, 0x0b);
    head.writeBigUInt64LE(2096304342n, 0x28);
    const error = thrown(() => synthesizePrefix(filesystemSize(head, 'ntfs') as number, 'ntfs', undefined));
    assert.ok(error instanceof UserError, `${error.constructor.name}: ${error.message}`);
  });

  it('a size beyond 2^53 bytes is no size at all', () => {
    assert.equal(filesystemSize(ext(0xffffffff, 6, 0xffffffff), 'ext'), undefined);
    const head = Buffer.alloc(MAGIC_BYTES);
    head.writeUInt16LE(0xffff, 0x0b);
    head.writeBigUInt64LE(0xffffffffffffffffn, 0x28);
    assert.equal(filesystemSize(head, 'ntfs'), undefined);
  });
});

describe('SHA256SUMS next to an http image (src/image/checksum.ts)', () => {
  const HEX = '0'.repeat(64);

  it('finds the digest in time linear in a line of many blanks', () => {
    assertLinearTime(
      (n) => repeat({ head: 'a *', piece: ' ', tail: '*' }, n),
      (text) => findInSums(text, 'image.img', 'sha256'),
    );
    assertLinearTime(
      (n) => repeat({ head: `${HEX}  image.img`, piece: ' ', tail: '*' }, n),
      (text) => findInSums(text, 'image.img', 'sha256'),
    );
    assertLinearTime(
      (n) => repeat({ head: HEX, piece: ' ', tail: 'a\u2028b' }, n),
      (text) => findInSums(text, 'image.img', 'sha256'),
    );
    assert.equal(findInSums(`${HEX}  image.img   \n`, 'image.img', 'sha256'), HEX);
    assert.equal(findInSums(`${HEX} *dir/image.img\r\n`, 'image.img', 'sha256'), HEX);
  });

  it('reads at most 1 MiB of a sidecar: an endless SHA256SUMS is refused, and not all read', async () => {
    let sent = 0;
    const server = createServer((req, res) => {
      if (!req.url?.endsWith('SUMS')) return res.writeHead(404).end();
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, ' ');
      const pump = () => {
        while (sent < 256 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end(`\n${HEX}  image.img\n`);
      };
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await assert.rejects(
        digestFromSidecar(new URL(`http://127.0.0.1:${port}/images/image.img`), 10_000, { caFile: '', verify: true }),
        /SHA512SUMS next to the image is larger than 1048576 bytes/,
      );
      assert.ok(sent < 32 * 1024 * 1024, `the server could send ${sent} bytes of each sidecar`);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('Ganeti environment counts (src/ganeti/env.ts)', () => {
  it('a huge NIC_COUNT or DISK_COUNT is refused at once, not walked (the environment read a bounded number of times)', () => {
    for (const [name, value] of [
      ['NIC_COUNT', '99999999999'],
      ['NIC_COUNT', '18446744073709551617'],
      ['DISK_COUNT', '99999999999'],
    ] as const) {
      const error = thrown(() => parseGanetiEnv(readBudget({ ...CREATE_ENV, [name]: value }, 10_000), 'create'));
      assert.ok(error instanceof ValidationError, `${error.constructor.name}: ${error.message}`);
      assert.ok(error.problems.includes(`${name}: must be at most 64`), error.message);
    }
    assert.equal(parseGanetiEnv({ ...CREATE_ENV, DISK_COUNT: '1', NIC_COUNT: '0' }, 'create').instance?.nics.length, 0);
  });
});

describe('OS parameter problems are one line each (src/ganeti/params.ts, src/schemas/validate.ts)', () => {
  const problems = (values: Record<string, string>) =>
    parseOsParams(wrapSecrets(new Map(Object.entries(values))), { imageDir: '/srv/images', requireImage: false })
      .problems;

  it("a value with a line break is shown on the problem's one line", () => {
    assert.deepEqual(problems({ img_format: '\n.' }), [
      "img_format: ' .' is not a supported format (one of diskdump, extdump, ntfsdump, qcow2, vmdk, vdi, vhdx)",
    ]);
    const [json] = problems({ img_personality: '\u0085' });
    assert.ok(json?.startsWith('img_personality: is not valid JSON') && !LINE_BREAK.test(json), JSON.stringify(json));
  });

  it('a JSON key with a line break is named on one line', () => {
    assert.deepEqual(validateJson('config-document', { 'A\rB': 0 }, 'config_url document'), [
      "config_url document: unknown key 'A B'",
    ]);
    const [key] = validateJson('img-properties', { 'X\u2028Y': 1 }, 'img_properties');
    assert.ok(key !== undefined && !LINE_BREAK.test(key), JSON.stringify(key));
  });
});

describe('config_url document (src/ganeti/config-url.ts)', () => {
  it('a __proto__ key is an unknown key like any other, not the prototype of the parameters', () => {
    for (const body of ['{"__proto__": {"img_id": "x"}}', '{"__PROTO__": "x"}', '{"__proto__": {"img_id": []}}']) {
      const error = thrown(() => parseConfigDocument(body, 'http://server/doc.json'));
      assert.ok(error instanceof UserError, `${error.constructor.name}: ${error.message}`);
      assert.match(error.message, /^config_url document: unknown key '__proto__'$/);
    }
  });

  it('a deeply nested value is refused with a UserError, not a RangeError from the call stack', () => {
    for (const [key, open, close] of [
      ['img_properties', '{"a":', '}'],
      ['img_personality', '[', ']'],
      ['inst_properties', '{"OSFAMILY":', '}'],
    ] as const) {
      const body = `{"${key}": ${open.repeat(20_000)}1${close.repeat(20_000)}}`;
      const error = thrown(() => parseConfigDocument(body, 'http://server/doc.json'));
      assert.ok(error instanceof UserError, `${error.constructor.name}: ${error.message}`);
      assert.match(error.message, new RegExp(`^config_url document\\.${key}(\\.[^ ]+)?: must be `));
    }
    assert.deepEqual(
      [
        ...parseConfigDocument(
          '{"img_properties": {"OSFAMILY": "linux", "ROOT_PARTITION": 1}, "img_personality": [{"path": "/x", "contents": "eA==", "mode": 420}]}',
          'doc',
        ),
      ],
      [
        ['img_properties', '{"OSFAMILY":"linux","ROOT_PARTITION":1}'],
        ['img_personality', '[{"path":"/x","contents":"eA==","mode":420}]'],
      ],
    );
  });
});

describe("helper errors are one line (helper/exec.ts and the parsers' error classes)", () => {
  const oneLineTaskError = (error: Error) => {
    assert.ok(error instanceof TaskError, `${error.constructor.name}: ${error.message}`);
    assert.ok(!LINE_BREAK.test(error.message), JSON.stringify(error.message));
  };

  it('an fstab source with a NEL is named on one line, as a TaskError', () => {
    oneLineTaskError(thrown(() => parseBsdDevice('/dev/wd0a\u0085', '')));
  });

  it('an XML name with a NEL is named on one line, as a TaskError', () => {
    const error = thrown(() => parseXml('<unattend>\n<RunSynchronous\u0085/></unattend>'));
    assert.ok(error instanceof XmlError);
    oneLineTaskError(error);
  });

  it('a TaskError made from a NIC value with a CR is one line', () => {
    const error = thrown(() =>
      networkModel({
        nics: [{ index: 0, mac: '\r', network: { tags: [] } }],
        network: { dhcpTags: [], statefulDhcpv6Tags: [], statelessDhcpv6Tags: [], defaultNicConfig: '' },
      }),
    );
    oneLineTaskError(new TaskError(`ConfigureNetwork: ${error.message}`));
  });
});

describe('Windows answer files and sysprep.inf from the image (helper/windows/*, helper/os/windows.ts)', () => {
  it('a UTF-16BE answer file of an odd number of bytes decodes (its last byte dropped), not a RangeError', () => {
    assert.equal(decodeXmlBytes(Buffer.from([0xfe, 0xff, 0])), '');
    assert.equal(decodeXmlBytes(Buffer.from([0xfe, 0xff, 0, 0x3c, 0, 0x61, 0])), '<a');
  });

  it('reads an element of many attributes in linear time', () => {
    // Units of ten characters: up to 16 Ki attributes (the quadratic check took 0.4 s at 8 Ki).
    assertLinearTime(
      (n) => `<a${Array.from({ length: n }, (_, i) => ` a${i}=""`).join('')}/>`,
      (text) => parseXml(text),
      16384,
    );
    assert.throws(() => parseXml('<a b="1" c="2" b="3"/>'), /attribute b repeated in <a>/);
  });

  it('reads sysprep.inf in linear time: a blank line without "=", an InstallFilesPath of many backslashes', () => {
    assertLinearTime(
      (n) => `[Unattended]\n${' '.repeat(n)}x`,
      (text) => new IniFile(text).get('Unattended', 'InstallFilesPath'),
    );
    assertLinearTime(
      (n) => repeat({ head: '[Unattended]\nInstallFilesPath=', piece: '\\', tail: '[' }, n),
      (text) => cmdLinesPath(new IniFile(text)),
    );
    const inf = new IniFile('[Unattended]\r\n ; a=comment\r\n  InstallFilesPath  =  C:\\sysprep\\files\\\\ \r\n');
    assert.equal(inf.get('unattended', 'installfilespath'), 'C:\\sysprep\\files\\\\');
    assert.equal(cmdLinesPath(inf), '/sysprep/files/$OEM$/CmdLines.txt');
    assert.equal(new IniFile('[A]\r\n  =x\r\nk;=1\r\n').get('A', 'k;'), undefined);
  });
});

describe('rc.conf from a BSD image (helper/bsd/rc-conf.ts)', () => {
  it('is edited and read in linear time: many blank lines, a value of many blanks', () => {
    assertLinearTime(
      (n) => repeat({ head: 'hostname=', piece: '\n', tail: '#' }, n),
      (text) => rcConfWith(text, [['hostname', 'vm1']]),
    );
    assertLinearTime(
      (n) => repeat({ head: 'hostname=a', piece: ' ', tail: 'x' }, n),
      (text) => rcConfValue(text, 'hostname'),
    );
    assert.equal(rcConfValue('hostname="vm1"   # the name\n', 'hostname'), 'vm1');
    assert.equal(rcConfWith('a=1\n\n\n', [['b', '2']]), 'a=1\nb="2"\n');
  });

  it('reads back a value it wrote with a CR, a " #" or single quotes in it', () => {
    for (const value of ['\r', ' #', "''", "'a'", 'a b'])
      assert.equal(rcConfValue(rcConfWith('', [['hostname', value]]), 'hostname'), value);
    assert.equal(rcConfValue("hostname='vm1' # the name", 'hostname'), 'vm1');
    assert.equal(rcConfValue('hostname=vm1 # the name', 'hostname'), 'vm1');
  });
});

describe('sfdisk --json (helper/disks.ts)', () => {
  const table = (partitions: unknown, label: unknown = 'dos') =>
    JSON.stringify({ partitiontable: { label, device: '/dev/vdb', unit: 'sectors', sectorsize: 512, partitions } });
  const refusal = (stdout: string) => {
    const error = thrown(() => parseSfdiskJson(stdout, '/dev/vdb', () => 2_097_152));
    assert.ok(error instanceof TaskError, `${error.constructor.name}: ${error.message}`);
    return error.message;
  };

  it('output that is not JSON, or not the table sfdisk describes, is a TaskError', () => {
    assert.equal(refusal(''), 'Unable to read partition table: sfdisk --json gave no JSON');
    assert.equal(
      refusal(table('x')),
      'Unable to read partition table: sfdisk --json gave partitions that are not a list',
    );
    assert.equal(
      refusal(table([{ node: '/dev/vdb1', start: 2048, size: 1000 }])),
      'Unable to read partition table: sfdisk --json partition 1 has no type',
    );
    assert.equal(
      refusal(table([{ node: 7, start: 2048, size: 1000, type: '83' }])),
      'Unable to read partition table: sfdisk --json partition 1 has no node',
    );
    assert.equal(refusal(table([null])), 'Unable to read partition table: sfdisk --json partition 1 is not an object');
    for (const start of [-1, 0.5, 2 ** 53, '2048', null])
      assert.match(
        refusal(table([{ node: '/dev/vdb1', start, size: 1000, type: '83' }])),
        /partition 1 has no start \(a whole number of sectors\)$/,
      );
    assert.equal(refusal(table([], 5)), "Unsupported partition table type '5'");
  });

  it('reads what sfdisk writes', () => {
    const t = parseSfdiskJson(
      table([
        { node: '/dev/vdb1', start: 2048, size: 1000, type: '83', bootable: true },
        { node: '/dev/vdb2', start: 4096, size: 10, type: 'A5' },
      ]),
      '/dev/vdb',
      () => 2_097_152,
    );
    assert.deepEqual(t.partitions, [
      { number: 1, node: '/dev/vdb1', start: 2048, size: 1000, type: '83' },
      { number: 2, node: '/dev/vdb2', start: 4096, size: 10, type: 'a5' },
    ]);
    assert.deepEqual(
      parseSfdiskJson(JSON.stringify({ partitiontable: { label: 'gpt' } }), '/dev/vdb', () => 8).partitions,
      [],
    );
  });
});

describe('/etc/passwd and /etc/group from the image (helper/guest-files.ts)', () => {
  it('lines whose uid or gid is not a number chown takes are skipped, as glibc skips them', () => {
    const passwd =
      'root:x:0:0:root:/root:/bin/sh\nbad:x:abc:0::/home/bad:/bin/sh\nnan:x::1::/h:/bin/sh\nbig:x:4294967295:0::/h:/bin/sh\nhex:x:0x10:0::/h:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh';
    assert.deepEqual(
      parsePasswd(passwd).map((e) => [e.name, e.uid, e.gid]),
      [
        ['root', 0, 0],
        ['user', 1000, 1000],
      ],
    );
    assert.deepEqual(
      [...parseGroup(' ::"\nwheel:x:10:root\nbad:x:-1:\nstaff:x:50:')],
      [
        ['wheel', 10],
        ['staff', 50],
      ],
    );
  });
});

describe('config document read by the helper (src/helper-vm/config-document.ts)', () => {
  it("text that is not JSON is refused with the helper's one-line error, not a SyntaxError", () => {
    const error = thrown(() => parseHelperDocument(''));
    assert.equal(error.constructor, Error);
    assert.equal(error.message, 'config document is not JSON: the config floppy is damaged');
  });

  it('a version that is an object without a usable toString is refused, not a TypeError', () => {
    for (const version of [{ toString: '' }, ['2\n'], '1\u2028']) {
      const error = thrown(() => parseHelperDocument(JSON.stringify({ version })));
      assert.equal(error.constructor, Error, `${error.constructor.name}: ${error.message}`);
      assert.match(
        error.message,
        /^config document version .* is not 1: the helper image does not match this snf-image \(run snf-image-update-helper\)$/,
      );
      assert.ok(!LINE_BREAK.test(error.message), JSON.stringify(error.message));
    }
  });

  it('a key with a line break is named on one line', () => {
    const error = thrown(() => parseHelperDocument(JSON.stringify({ version: 1, properties: { 'A\nB': 5 } })));
    assert.ok(!LINE_BREAK.test(error.message), JSON.stringify(error.message));
    assert.match(error.message, /properties\.A B: /);
  });
});

describe('config floppy (helper/config-floppy.ts)', () => {
  it('an archive that ends inside config.json is refused, and leaves no error nobody handles (PID 1 would die of it)', async () => {
    const archive = pack();
    archive.entry({ name: 'other', mode: 0o600 }, 'x');
    archive.entry({ name: 'config.json', mode: 0o600 }, '{"version":1}');
    archive.finalize();
    const chunks: Buffer[] = [];
    for await (const chunk of archive) chunks.push(chunk as Buffer);
    const dir = mkdtempSync(join(tmpdir(), 'snf-floppy-'));
    const uncaught: unknown[] = [];
    const catcher = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', catcher);
    try {
      const floppy = join(dir, 'floppy');
      writeFileSync(floppy, Buffer.concat(chunks).subarray(0, 1536));
      await assert.rejects(
        readConfigFloppy(floppy),
        (e: Error) => e.message === `${floppy}: not a config floppy (Unexpected end of data)`,
      );
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('uncaughtException', catcher);
      rmSync(dir, { recursive: true, force: true });
    }
    assert.deepEqual(uncaught.map(String), []);
  });
});

describe('Linux configuration files from the image (helper/network/apply.ts, helper/os/linux.ts)', () => {
  it('a netplan file of many blank lines is read in linear time', () => {
    assertLinearTime(
      (n) => '\n'.repeat(n),
      (text) => netplanUsesNetworkManager(text),
    );
    assert.equal(netplanUsesNetworkManager('network:\n  version: 2\n  renderer: NetworkManager\n'), true);
    assert.equal(netplanUsesNetworkManager('network:\n\n  renderer: "NetworkManager"  \r\n'), true);
    assert.equal(netplanUsesNetworkManager('network:\n  renderer: networkd\n'), false);
    assert.equal(
      netplanUsesNetworkManager('network:\n  renderer:\n    NetworkManager\n'),
      true,
      'a YAML value on the next line',
    );
    assertLinearTime(
      (n) => '\r'.repeat(n),
      (text) => netplanUsesNetworkManager(text),
    );
  });

  it('a home directory with $& or $$ in /etc/passwd is the authorized_keys directory as written', () => {
    assert.equal(authorizedKeysPath('', 'user', '/home/$&'), '/home/$&/.ssh/authorized_keys');
    assert.equal(authorizedKeysPath('', 'user', '/home/$$'), '/home/$$/.ssh/authorized_keys');
    assert.equal(authorizedKeysPath('AuthorizedKeysFile /keys/%u/%%h', 'a$`', '/h'), '/keys/a$`/%h');
    assert.equal(
      authorizedKeysPath('', 'user', '/%u'),
      '/%u/.ssh/authorized_keys',
      'a % in the home directory is not expanded again',
    );
  });
});

describe('configuration values timers and sizes can use (src/config/settings.ts)', () => {
  const load = (text: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-conf-'));
    try {
      writeFileSync(join(dir, 'snf-image.conf'), text);
      return loadConfig({ configFile: join(dir, 'snf-image.conf') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('a duration beyond 24 days (Node fires longer timers after 1 ms; 1e400 s is Infinity) is refused', () => {
    assert.equal(load('HELPER_SOFT_TIMEOUT=24d\n').settings.HELPER_SOFT_TIMEOUT, 24 * 86400);
    for (const value of ['36000m', '25d', `${'9'.repeat(400)}s`]) {
      const error = thrown(() => load(`HTTP_TIMEOUT=${value}\n`));
      assert.ok(error instanceof UserError, `${error.constructor.name}: ${error.message}`);
      assert.match(error.message, /snf-image\.conf:1: HTTP_TIMEOUT: must be at most 24d \(got '/);
    }
  });

  it('a size or a count beyond 2^53 is refused, not rounded', () => {
    for (const line of [
      'CONFIG_URL_MAX_SIZE=9999999999T',
      'HELPER_MEMORY=99999999999999999999',
      'HTTP_RETRIES=99999999999999999999',
    ]) {
      const error = thrown(() => load(`${line}\n`));
      assert.ok(error instanceof UserError, `${error.constructor.name}: ${error.message}`);
      assert.match(error.message, /: must be at most 9007199254740991/);
    }
  });
});
