/**
 * Fuzzing of the rest of what the helper VM reads: sfdisk's JSON description of the image's
 * partition table, the image's /etc/passwd and /etc/group, the config floppy (a tar
 * archive) and the config document on it, the SWAP property and the NIC values that make
 * the network model.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { pack } from 'tar-stream';
import { readConfigFloppy } from '../../helper/config-floppy.ts';
import { lastPartition, parseSfdiskJson, type PartitionTable } from '../../helper/disks.ts';
import { TaskError } from '../../helper/exec.ts';
import { parseGroup, parsePasswd } from '../../helper/guest-files.ts';
import { networkModel, parseDefaultNicConfig } from '../../helper/network/model.ts';
import { parseSwapProperty, planSwapPartition } from '../../helper/swap-plan.ts';
import { parseConfigDocument, type ConfigDocument } from '../../src/helper-vm/config-document.ts';
import { CONFIG_FILE_NAME, FLOPPY_BYTES } from '../../src/helper-vm/config-media.ts';
import {
  applyMutations,
  assertLinearTime,
  fuzz,
  fuzzAsync,
  hostileText,
  linesOf,
  mutationsOf,
  parseOrRefuse,
  parseOrRefuseAsync,
  PROTOTYPE_KEYS,
  repeat,
  repeatShapes,
} from '../support/fuzz.ts';

describe('fuzz: sfdisk --json (helper/disks.ts)', () => {
  const number = fc.oneof(
    fc.nat({ max: 10_000_000 }),
    fc.constantFrom(-1, 0.5, 2 ** 53, 1e300, Number.MAX_SAFE_INTEGER),
    fc.string({ maxLength: 3 }),
    fc.constant(null),
  );
  const partition = fc.record(
    {
      node: fc.oneof(
        fc.constantFrom('/dev/vdb1', '/dev/vdb5', '/dev/vdb', '/dev/nvme0n1p2'),
        fc.string({ maxLength: 10 }),
        fc.constant(7),
      ),
      start: number,
      size: number,
      type: fc.oneof(
        fc.constantFrom('83', '5', 'f', 'a5', '0FC63DAF-8483-4772-8E79-3D69D8477DE4'),
        fc.string({ maxLength: 4 }),
        fc.constant(131),
      ),
      name: fc.string({ maxLength: 6 }),
    },
    { requiredKeys: [] },
  );
  const table = fc.record(
    {
      label: fc.oneof(fc.constantFrom('dos', 'gpt', 'sun'), fc.constant(5)),
      device: fc.constant('/dev/vdb'),
      sectorsize: fc.oneof(fc.constantFrom(512, 4096), number),
      partitions: fc.oneof(fc.array(partition, { maxLength: 6 }), fc.constant(null), fc.constant('x')),
    },
    { requiredKeys: [] },
  );
  const stdout = fc.oneof(
    fc.record({ partitiontable: table }).map((j) => JSON.stringify(j)),
    fc.json({ maxDepth: 3 }),
    hostileText(60),
  );

  it('any sfdisk output gives a partition table of whole sector numbers, or a one-line TaskError', () => {
    fuzz(
      'sfdisk json',
      stdout,
      (text) => {
        const t = parseOrRefuse(() => parseSfdiskJson(text, '/dev/vdb', () => 2_097_152), [TaskError]);
        if (!t) return;
        for (const p of t.partitions) {
          assert.ok(
            Number.isSafeInteger(p.start) && p.start >= 0 && Number.isSafeInteger(p.size) && p.size >= 0,
            `partition ${p.node}: start ${p.start}, size ${p.size}`,
          );
          assert.equal(typeof p.node, 'string');
          assert.equal(typeof p.type, 'string');
        }
        lastPartition(t);
      },
      1000,
    );
  });
});

describe('fuzz: /etc/passwd and /etc/group (helper/guest-files.ts)', () => {
  const ids = ['0', '1000', '', 'abc', '-1', '1e3', '0x10', ' 5', '4294967296', '99999999999999999999'];
  const text = fc.oneof(
    hostileText(300),
    linesOf(['root', 'user', ':', 'x', ...ids, '/home/user', '/bin/sh', '#'], 10),
  );
  it('reads any passwd and group file into entries with uid and gid chown can take', () => {
    fuzz(
      'passwd/group',
      text,
      (t) => {
        const valid = (id: number) => Number.isInteger(id) && id >= 0 && id <= 0xfffffffe;
        for (const e of parsePasswd(t))
          assert.ok(valid(e.uid) && valid(e.gid), `${e.name}: uid ${e.uid}, gid ${e.gid}`);
        for (const [name, gid] of parseGroup(t)) assert.ok(valid(gid), `${name}: gid ${gid}`);
      },
      500,
    );
  });
  it('takes time linear in the file', () => {
    fuzz(
      'passwd time',
      repeatShapes(':', ['root:x:0:0:', 'root']),
      (shape) => {
        assertLinearTime(
          (n) => repeat(shape, n),
          (t) => {
            parsePasswd(t);
            parseGroup(t);
          },
        );
      },
      40,
    );
  });
});

/** A valid config floppy image's archive part (the zero padding is added when written). */
async function floppyArchive(content: string): Promise<Buffer> {
  const archive = pack();
  archive.entry({ name: 'other', mode: 0o600 }, 'x');
  archive.entry({ name: CONFIG_FILE_NAME, mode: 0o600, uid: 0, gid: 0, mtime: new Date(0) }, content);
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('fuzz: config floppy (helper/config-floppy.ts)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'snf-fuzz-floppy-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  /** Header fields a tar reader trusts: name, mode, size (octal, 12 bytes at 124), checksum, type flag, magic. */
  const TAR_FIELDS = [
    0,
    100,
    124,
    130,
    135,
    148,
    156,
    257,
    512,
    512 + 124,
    512 + 156,
    1024,
    1024 + 124,
    1024 + 148,
    1024 + 156,
  ];
  const recipe = fc.record({
    change: mutationsOf(2048, 6),
    fields: fc.array(
      fc.record({
        at: fc.constantFrom(...TAR_FIELDS),
        text: fc.oneof(
          fc.constantFrom(
            '77777777777',
            '99999999999',
            '\x80\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff',
            'x',
            'g',
            'L',
            '5',
            '0',
            '',
            ' ',
          ),
          fc.string({ maxLength: 12 }),
        ),
      }),
      { maxLength: 4 },
    ),
    pad: fc.boolean(),
  });

  it('reads config.json from any floppy, or refuses with a one-line error, within the floppy', async () => {
    const base = await floppyArchive('{"version":1}');
    let file = 0;
    await fuzzAsync(
      'config floppy',
      recipe,
      async (r) => {
        const tar = applyMutations(base, r.change);
        for (const f of r.fields) if (f.at < tar.length) tar.write(f.text, f.at, 'latin1');
        const image = r.pad ? Buffer.concat([tar, Buffer.alloc(FLOPPY_BYTES - tar.length)]) : tar;
        const path = join(dir, `floppy-${file++}`);
        writeFileSync(path, image);
        // A stream error nobody listens to is an uncaught exception: PID 1 of the helper would die.
        const uncaught: unknown[] = [];
        const catcher = (error: unknown) => uncaught.push(error);
        process.on('uncaughtException', catcher);
        try {
          const text = await parseOrRefuseAsync(() => readConfigFloppy(path), [Error]);
          if (text !== undefined) assert.ok(Buffer.byteLength(text) <= image.length);
          for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
        } finally {
          process.off('uncaughtException', catcher);
          rmSync(path);
        }
        assert.deepEqual(uncaught, [], 'the floppy reader left an error nobody handles');
      },
      200,
    );
  });
});

describe('fuzz: config document (src/helper-vm/config-document.ts)', () => {
  const good: ConfigDocument = {
    version: 1,
    operation: 'create',
    hostname: 'vm1',
    properties: { OSFAMILY: 'linux' },
    disks: [{ index: 0, serial: 'snf-disk0' }],
    nics: [],
    network: { dhcpTags: [], statefulDhcpv6Tags: [], statelessDhcpv6Tags: [], defaultNicConfig: 'dhcp' },
    secrets: {},
    personality: [],
    hostKeys: {},
    windowsTimezone: 'UTC',
    cloudInitDebug: false,
    debug: false,
  };
  const keys = Object.keys(good);
  const value = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.dictionary(
      fc.oneof(fc.constantFrom(...PROTOTYPE_KEYS, 'a\nb'), fc.string({ maxLength: 5 })),
      fc.string({ maxLength: 5 }),
      { maxKeys: 3 },
    ),
  );
  const text = fc.oneof(
    fc
      .array(fc.tuple(fc.oneof(fc.constantFrom(...keys, ...PROTOTYPE_KEYS), fc.string({ maxLength: 6 })), value), {
        maxLength: 4,
      })
      .map((changes) => JSON.stringify(Object.assign({ ...good }, Object.fromEntries(changes)))),
    fc.json({ maxDepth: 3 }),
    hostileText(80),
  );
  it('any document is read and validated, or refused with a one-line error', () => {
    fuzz(
      'config document',
      text,
      (t) => {
        parseOrRefuse(() => parseConfigDocument(t), [Error]);
      },
      1000,
    );
  });
});

describe('fuzz: SWAP property and NIC values (helper/swap-plan.ts, helper/network/model.ts)', () => {
  it('SWAP gives a plan input or a one-line TaskError', () => {
    const swap = fc.oneof(
      hostileText(20),
      fc.stringMatching(/^[0-9]{1,20}:[0-9]{1,20}$/),
      fc.constantFrom('b', 'z', 'a', '129:1', '5:512'),
    );
    fuzz(
      'SWAP property',
      swap,
      (s) => {
        const spec = parseOrRefuse(() => parseSwapProperty(s), [TaskError]);
        if (spec?.kind === 'partition')
          assert.ok(
            Number.isSafeInteger(spec.mib) && spec.number >= 1 && spec.number <= 128,
            `SWAP ${JSON.stringify(s)} gives ${JSON.stringify(spec)}`,
          );
      },
      500,
    );
  });

  it('a swap partition is planned inside the disk, or refused with a one-line TaskError', () => {
    /** Partitions one after the other from sector 2048, as a table sfdisk read from an image. */
    const table = fc
      .record({
        type: fc.constantFrom<'dos' | 'gpt'>('dos', 'gpt'),
        sectorSize: fc.constantFrom(512, 4096),
        spare: fc.nat({ max: 4_000_000 }),
        parts: fc.array(
          fc.record({
            number: fc.integer({ min: 1, max: 12 }),
            gap: fc.nat({ max: 4096 }),
            size: fc.integer({ min: 1, max: 2_000_000 }),
            type: fc.constantFrom('83', '82', '5', 'f', '0fc63daf-8483-4772-8e79-3d69d8477de4'),
          }),
          { maxLength: 6 },
        ),
      })
      .map(({ type, sectorSize, spare, parts }): PartitionTable => {
        let at = 2048;
        const partitions = parts.map((p) => {
          const start = at + p.gap;
          at = start + p.size;
          return { number: p.number, node: `/dev/vdb${p.number}`, start, size: p.size, type: p.type };
        });
        return { device: '/dev/vdb', type, sectorSize, sectors: at + spare + 34, partitions };
      });
    const spec = fc.record({
      number: fc.integer({ min: 1, max: 128 }),
      mib: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.constantFrom(2 ** 40, 2 ** 53)),
    });
    fuzz(
      'SWAP plan',
      fc.tuple(table, spec),
      ([t, s]) => {
        const ops = parseOrRefuse(() => planSwapPartition(t, s), [TaskError]);
        for (const op of ops ?? []) {
          assert.ok(Number.isSafeInteger(op.size) && op.size > 0, `${JSON.stringify(op)}`);
          if (op.op === 'create')
            assert.ok(
              Number.isSafeInteger(op.start) && op.start >= 0 && op.start + op.size <= t.sectors,
              `${JSON.stringify(op)} on a disk of ${t.sectors} sectors`,
            );
        }
      },
      500,
    );
  });

  it('any NIC values give a network model or a one-line error', () => {
    const nicText = fc.oneof(
      hostileText(20),
      fc.constantFrom(
        'aa:00:00:12:34:56',
        'AA-00-00-12-34-57',
        '192.0.2.10',
        '192.0.2.0/24',
        '192.0.2.0/33',
        '192.0.2.1',
        '2001:db8::/64',
        'dhcp',
      ),
    );
    const nic = fc.record(
      {
        index: fc.nat({ max: 3 }),
        mac: nicText,
        ip: fc.option(nicText, { nil: undefined }),
        network: fc.record(
          {
            tags: fc.array(fc.constantFrom('dhcp', 'nfdhcpd', 'x'), { maxLength: 2 }),
            subnet: fc.option(nicText, { nil: undefined }),
            gateway: fc.option(nicText, { nil: undefined }),
            gateway6: fc.option(nicText, { nil: undefined }),
          },
          { requiredKeys: ['tags'] },
        ),
      },
      { requiredKeys: ['index', 'mac', 'network'] },
    );
    const settings = fc.record({
      dhcpTags: fc.constant<string[]>(['dhcp']),
      statefulDhcpv6Tags: fc.constant<string[]>([]),
      statelessDhcpv6Tags: fc.constant<string[]>([]),
      defaultNicConfig: fc.oneof(fc.constantFrom('dhcp', 'dhcp+slaac', ''), hostileText(10)),
    });
    /** As ConfigureNetwork reports the model's errors: a TaskError. */
    const asTask =
      <R>(f: () => R) =>
      () => {
        try {
          return f();
        } catch (error) {
          throw error instanceof Error && error.constructor === Error
            ? new TaskError(`ConfigureNetwork: ${error.message}`)
            : error;
        }
      };
    fuzz(
      'network model',
      fc.tuple(fc.array(nic, { maxLength: 3 }), settings),
      ([nics, network]) => {
        parseOrRefuse(
          asTask(() => networkModel({ nics, network })),
          [TaskError],
        );
        parseOrRefuse(
          asTask(() => parseDefaultNicConfig(network.defaultNicConfig)),
          [TaskError],
        );
      },
      500,
    );
  });
});
