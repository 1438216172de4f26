/**
 * Fuzzing of what the helper reads from a Windows image: hivexget's listing of registry
 * values, answer files (the XML reader and the unattend.xml edits), and sysprep.inf /
 * CmdLines.txt.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TaskError } from '../../helper/exec.ts';
import { cmdLinesPath } from '../../helper/os/windows.ts';
import { parseRegLine } from '../../helper/windows/hive.ts';
import { builtInSysprepInf, IniFile } from '../../helper/windows/sysprep-inf.ts';
import {
  addSpecializeCommand,
  AnswerFileError,
  builtInUnattend,
  localAccountNames,
  parseUnattend,
  serializeUnattend,
  setShellSetup,
  specializeCommands,
} from '../../helper/windows/unattend.ts';
import { decodeXmlBytes, parseXml, XmlError } from '../../helper/windows/xml.ts';
import { assertLinearTime, fuzz, hostileText, linesOf, parseOrRefuse, repeat, repeatShapes } from '../support/fuzz.ts';

describe('fuzz: registry values from hivexget (helper/windows/hive.ts)', () => {
  const line = fc.oneof(
    hostileText(80),
    fc
      .tuple(
        fc.constantFrom('"', '@', '"a\\"b"', '"x'),
        fc.constantFrom('=', '"=', ''),
        fc.constantFrom('"', 'dword:', 'hex:', 'hex(7):', 'hex(ffffffffffff):', 'hex(zz):', ''),
        hostileText(30),
      )
      .map((p) => p.join('')),
  );
  it('reads any line as a typed value or as nothing', () => {
    fuzz(
      'hivexget line',
      line,
      (l) => {
        const parsed = parseRegLine(l);
        if (parsed?.[1].type === 'dword')
          assert.ok(Number.isInteger(parsed[1].value) && parsed[1].value >= 0 && parsed[1].value <= 0xffffffff);
      },
      1000,
    );
  });
  it('takes time linear in the line', () => {
    fuzz(
      'hivexget line time',
      repeatShapes('@:,()', ['"a"=', '"', '"a"=hex:', '"a"="']),
      (shape) => {
        assertLinearTime(
          (n) => repeat(shape, n),
          (l) => parseRegLine(l),
        );
      },
      60,
    );
  });
});

/** Edits of a valid answer file: pieces cut out, pieces of XML syntax put in. */
const UNATTEND = builtInUnattend('GTB Standard Time');
const TOKENS = [
  '<',
  '>',
  '/>',
  '</',
  '<!--',
  '-->',
  '<![CDATA[',
  ']]>',
  '<?',
  '?>',
  '&',
  '&amp;',
  '&#x0;',
  '&#1114112;',
  '&#xD800;',
  '&lt',
  '"',
  "'",
  '=',
  ' ',
  '\n',
  '<!DOCTYPE',
  'settings',
  'component',
  'wcm:action="add"',
  '<Order>',
  '</Order>',
  '<RunSynchronousCommand>',
  '\ufeff',
];
const editedUnattend = fc.array(
  fc.record({
    at: fc.nat({ max: UNATTEND.length }),
    cut: fc.nat({ max: 40 }),
    put: fc.oneof(fc.constantFrom(...TOKENS), hostileText(6)),
  }),
  { minLength: 1, maxLength: 6 },
);
const applyEdits = (edits: ReadonlyArray<{ at: number; cut: number; put: string }>) =>
  edits.reduce((t, e) => t.slice(0, e.at) + e.put + t.slice(e.at + e.cut), UNATTEND);
const xmlText = fc.oneof(
  editedUnattend.map((edits) => ({ edits })),
  linesOf(TOKENS, 6).map((text) => ({ text })),
  hostileText(200).map((text) => ({ text })),
);
const textOf = (x: { edits: ReadonlyArray<{ at: number; cut: number; put: string }> } | { text: string }) =>
  'edits' in x ? applyEdits(x.edits) : x.text;

describe('fuzz: answer files (helper/windows/xml.ts, helper/windows/unattend.ts)', () => {
  it('parses any answer file or refuses it with a one-line AnswerFileError; an accepted one takes the edits and reads back', () => {
    fuzz(
      'unattend.xml',
      fc.tuple(xmlText, fc.constantFrom<'amd64' | 'x86'>('amd64', 'x86')),
      ([x, arch]) => {
        const doc = parseOrRefuse(() => parseUnattend(textOf(x), 'in the image'), [AnswerFileError]);
        if (!doc) return;
        specializeCommands(doc, arch);
        localAccountNames(doc);
        addSpecializeCommand(doc, arch, { description: 'fuzz', path: 'C:\\fuzz.cmd' });
        setShellSetup(doc, arch, 'ComputerName', 'VM-1');
        parseUnattend(serializeUnattend(doc), 'written back');
      },
      500,
    );
  });

  it('the XML reader refuses with a one-line XmlError', () => {
    fuzz(
      'XML reader',
      xmlText,
      (x) => {
        parseOrRefuse(() => parseXml(textOf(x)), [XmlError]);
      },
      500,
    );
  });

  it('decodes the bytes of any answer file', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc
        .tuple(fc.constantFrom([0xff, 0xfe], [0xfe, 0xff], [0xef, 0xbb, 0xbf]), fc.uint8Array({ maxLength: 64 }))
        .map(([bom, rest]) => Uint8Array.from([...bom, ...rest])),
    );
    fuzz(
      'answer file bytes',
      bytes,
      (b) => {
        assert.equal(typeof decodeXmlBytes(Buffer.from(b)), 'string');
      },
      500,
    );
  });

  it('takes time linear in the document', () => {
    fuzz(
      'XML reader time',
      repeatShapes('<>/&;!-?[]', ['<a>', '<a ', '<a b="', '<!--', '<a><![CDATA[', '<?xml ']),
      (shape) => {
        assertLinearTime(
          (n) => repeat(shape, n),
          (t) => parseXml(t),
        );
      },
      100,
    );
  });

  it('takes time linear in the number of attributes and of specialize commands', () => {
    assertLinearTime(
      (n) => `<a${Array.from({ length: n }, (_, i) => ` a${i}=""`).join('')}/>`,
      (t) => parseXml(t),
      16384,
    );
    const command = '<RunSynchronousCommand><Order>1</Order><Path>x</Path></RunSynchronousCommand>';
    const doc = (n: number) => UNATTEND.replace('<RunSynchronous>', `<RunSynchronous>${command.repeat(n)}`);
    assertLinearTime(
      doc,
      (t) => addSpecializeCommand(parseUnattend(t, 'fuzz'), 'amd64', { description: 'fuzz', path: 'C:\\fuzz.cmd' }),
      4096,
    );
  });
});

describe('fuzz: sysprep.inf and CmdLines.txt (helper/windows/sysprep-inf.ts, helper/os/windows.ts)', () => {
  const ini = fc.oneof(
    hostileText(300),
    linesOf(
      [
        '[',
        ']',
        'Unattended',
        'GuiUnattended',
        'Commands',
        'InstallFilesPath',
        '=',
        ';',
        '"',
        ' ',
        '\r',
        'C:\\sysprep\\',
        '..',
        '\\',
      ],
      12,
    ),
    fc.constant(builtInSysprepInf('85')),
  );
  it('reads and edits any INI file; InstallFilesPath is used or refused with a one-line TaskError', () => {
    fuzz(
      'sysprep.inf',
      ini,
      (text) => {
        const inf = new IniFile(text);
        inf.get('Unattended', 'InstallFilesPath');
        const path = parseOrRefuse(() => cmdLinesPath(inf), [TaskError]);
        if (path !== undefined) assert.ok(path.startsWith('/') && !path.split('/').includes('..'), path);
        inf.set('UserData', 'ComputerName', 'VM-1');
        inf.remove('Commands', '"a"');
        inf.append('Commands', '"b"');
        assert.deepEqual(inf.entries('Commands').at(-1), '"b"');
        assert.equal(new IniFile(inf.toString()).get('UserData', 'ComputerName'), 'VM-1');
      },
      500,
    );
  });
  it('takes time linear in the file', () => {
    fuzz(
      'sysprep.inf time',
      repeatShapes('[];\\', ['[Unattended]\n', '[Unattended]\nInstallFilesPath=', 'a', ' ']),
      (shape) => {
        assertLinearTime(
          (n) => repeat(shape, n),
          (text) => {
            const inf = new IniFile(text);
            inf.get('Unattended', 'InstallFilesPath');
            cmdLinesPath(inf);
          },
        );
      },
      100,
    );
  });
});
