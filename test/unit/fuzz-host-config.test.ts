/**
 * Fuzzing of what the host reads as configuration: the shell-style configuration files,
 * Ganeti's environment, the OS parameters (JSON included), their JSON Schema messages and
 * the config_url document a remote server sends.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { loadConfig } from '../../src/config/load.ts';
import { SETTINGS } from '../../src/config/settings.ts';
import { parseShellConf } from '../../src/config/shell-conf.ts';
import { parseConfigDocument } from '../../src/ganeti/config-url.ts';
import { parseGanetiEnv, type Env, type ScriptName } from '../../src/ganeti/env.ts';
import { OS_PARAMETER_NAMES } from '../../src/ganeti/os-parameters.ts';
import { parseOsParams, wrapSecrets } from '../../src/ganeti/params.ts';
import { SCHEMAS, validateJson, type SchemaName } from '../../src/schemas/validate.ts';
import { UserError, ValidationError } from '../../src/util/errors.ts';
import { clearRegisteredSecrets } from '../../src/util/secret.ts';
import {
  assertLinearTime,
  fuzz,
  hostileText,
  LINE_BREAK,
  linesOf,
  parseOrRefuse,
  PROTOTYPE_KEYS,
  readBudget,
  repeat,
  repeatShapes,
} from '../support/fuzz.ts';

const assertOneLine = (lines: readonly string[]) => {
  for (const line of lines) assert.ok(!LINE_BREAK.test(line), `not one line: ${JSON.stringify(line)}`);
};

/** JSON values whose keys include the names that break plain-object maps and line breaks. */
const hostileKey = fc.oneof(
  fc.constantFrom(...PROTOTYPE_KEYS, 'OSFAMILY', 'img_id', 'IMG_PASSWD', 'a\nb', 'A\rB', 'x\u2028y', 'EXCLUDE_TASK_X'),
  fc.string({ maxLength: 12 }),
);
const { tree: hostileJson } = fc.letrec((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 20 }),
    tie('array'),
    tie('object'),
  ),
  array: fc.array(tie('tree'), { maxLength: 4 }),
  object: fc.array(fc.tuple(hostileKey, tie('tree')), { maxLength: 5 }).map((entries) => {
    // Own properties even for '__proto__', as JSON.parse makes them.
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries)
      Object.defineProperty(out, k, { value: v, enumerable: true, configurable: true, writable: true });
    return out;
  }),
}));
/**
 * Nesting that JSON.parse takes (it is iterative) but recursive code may not, as a recipe
 * so that a failure prints the depth, not the text.
 */
interface Deep {
  nest: '[' | '{"a":' | '{"OSFAMILY":';
  depth: number;
}
const deepJson: fc.Arbitrary<Deep> = fc.record({
  nest: fc.constantFrom<Deep['nest']>('[', '{"a":', '{"OSFAMILY":'),
  depth: fc.integer({ min: 1, max: 20000 }),
});
const jsonOf = (value: string | Deep): string =>
  typeof value === 'string'
    ? value
    : `${value.nest.repeat(value.depth)}1${(value.nest === '[' ? ']' : '}').repeat(value.depth)}`;
/** JSON text: random values, values with hostile keys, deep nesting, and not JSON at all. */
const jsonText = fc.oneof<fc.Arbitrary<string | Deep>[]>(
  fc.json({ maxDepth: 3 }),
  hostileJson.map((v) => JSON.stringify(v) ?? 'null'),
  deepJson,
  hostileText(80),
);

describe('fuzz: shell-style configuration (src/config/shell-conf.ts)', () => {
  const text = fc.oneof(
    hostileText(400),
    linesOf(['A=', 'export ', 'B="', "'", '$A', '${A}', '${', '$(', '`', '\\', '#', ' ', '"', '=', 'x', ';', '\\\n']),
  );

  it('parses any file into entries or refuses it with a one-line UserError', () => {
    fuzz(
      'shell-conf',
      text,
      (t) => {
        const entries = parseOrRefuse(
          () => parseShellConf(t, 'fuzz.conf', (name) => (name === 'HOME' ? '/root' : undefined)),
          [UserError],
        );
        for (const e of entries ?? []) assert.match(e.key, /^[A-Za-z_][A-Za-z0-9_]*$/);
      },
      1000,
    );
  });

  it('takes time linear in the file', () => {
    fuzz(
      'shell-conf time',
      repeatShapes('$`{}()', ['A=', 'A="', "A='", 'export A=', 'A=$']),
      (shape) => {
        assertLinearTime(
          (n) => repeat(shape, n),
          (t) => parseShellConf(t, 'fuzz.conf'),
        );
      },
      100,
    );
  });
});

describe('fuzz: configuration values (src/config/load.ts, src/config/settings.ts)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'snf-fuzz-conf-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const keys = Object.keys(SETTINGS);
  const value = fc.oneof(
    fc.constantFrom(
      '0',
      '1',
      '120',
      '90s',
      '5m',
      '1h',
      '24d',
      '25d',
      '1.5',
      '512M',
      '20G',
      '99999999999999999999',
      `${'9'.repeat(400)}s`,
      '9999999999T',
      'yes',
      'no',
      '/var/x',
      'local=40',
      'auto',
      '',
    ),
    fc.stringMatching(/^[0-9]{1,30}(\.[0-9]{1,5})?[smhdKMGT]?$/),
    hostileText(12),
  );
  const file = fc
    .array(fc.tuple(fc.constantFrom(...keys), value), { maxLength: 6 })
    .map((entries) => entries.map(([k, v]) => `${k}='${v.replaceAll("'", '')}'`).join('\n'));
  /** setTimeout and AbortSignal.timeout take at most 2^31-1 ms (beyond it Node fires after 1 ms). */
  const MAX_TIMER_SECONDS = 0x7fffffff / 1000;

  it('any configuration file gives settings timers and sizes can use, or a one-line UserError', () => {
    let n = 0;
    fuzz(
      'configuration values',
      file,
      (text) => {
        const path = join(dir, `snf-image-${n++}.conf`);
        writeFileSync(path, text);
        const config = parseOrRefuse(() => loadConfig({ configFile: path }), [UserError]);
        rmSync(path);
        if (!config) return;
        const s = config.settings;
        for (const key of ['HELPER_SOFT_TIMEOUT', 'HELPER_HARD_TIMEOUT', 'CONFIG_URL_TIMEOUT', 'HTTP_TIMEOUT'] as const)
          assert.ok(Number.isFinite(s[key]) && s[key] >= 0 && s[key] <= MAX_TIMER_SECONDS, `${key} ${s[key]}`);
        for (const key of ['CONFIG_URL_MAX_SIZE', 'IMAGE_CACHE_MAX_SIZE', 'HELPER_MEMORY', 'HTTP_RETRIES'] as const)
          assert.ok(Number.isSafeInteger(s[key]), `${key} ${s[key]}`);
      },
      300,
    );
  });
});

describe('fuzz: Ganeti environment (src/ganeti/env.ts)', () => {
  const number = fc.oneof(
    fc.nat({ max: 20 }).map(String),
    fc.constantFrom('', '-1', '1.5', '1e3', '0x10', ' 1', '99999999999', '18446744073709551617'),
    hostileText(10),
  );
  const value = fc.oneof(
    hostileText(40),
    number,
    fc.constantFrom('/dev/vg/disk0', 'rw', 'ro', 'aa:00:00:12:34:56', 'bridged', '20', 'snf-image'),
  );
  const names = [
    'OS_API_VERSION',
    'OS_NAME',
    'OS_VARIANT',
    'DEBUG_LEVEL',
    'INSTANCE_NAME',
    'INSTANCE_OS',
    'INSTANCE_CTIME',
    'INSTANCE_REINSTALL',
    'DISK_COUNT',
    'NIC_COUNT',
    'DISK_0_PATH',
    'DISK_0_URI',
    'DISK_0_ACCESS',
    'DISK_0_SIZE',
    'DISK_1_PATH',
    'NIC_0_MAC',
    'NIC_0_MODE',
    'NIC_0_NETWORK_TAGS',
    'NIC_1_MAC',
    'OLD_INSTANCE_NAME',
    'EXPORT_INDEX',
    'EXPORT_DISK_PATH',
    'IMPORT_INDEX',
    'IMPORT_DEVICE',
    'EXP_SIZE_FD',
    'INSTANCE_HV___proto__',
    'INSTANCE_BE_constructor',
    'OSP_IMG_ID',
    'OSP___PROTO__',
    '__proto__',
  ];
  const env = fc.dictionary(fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 12 })), value, { maxKeys: 20 });
  const base = {
    OS_API_VERSION: '20',
    OS_NAME: 'snf-image',
    INSTANCE_NAME: 'inst1',
    DISK_COUNT: '1',
    DISK_0_PATH: '/dev/vg/disk0',
  };
  const script = fc.constantFrom<ScriptName>('create', 'import', 'export', 'rename', 'verify');

  it('any environment gives typed values or a ValidationError of one-line problems, with bounded work', () => {
    fuzz(
      'ganeti env',
      fc.tuple(env, fc.boolean(), script),
      ([vars, withBase, name]) => {
        const merged: Env = withBase ? { ...base, ...vars } : vars;
        try {
          parseGanetiEnv(readBudget(merged, 10_000), name);
        } catch (error) {
          if (!(error instanceof ValidationError)) throw error;
          assert.ok(error.problems.length > 0);
          assertOneLine(error.problems);
          assertOneLine([error.message]);
        }
      },
      1000,
    );
  });
});

describe('fuzz: OS parameters (src/ganeti/params.ts, src/schemas/validate.ts)', () => {
  const parameterValue = fc.oneof<fc.Arbitrary<string | Deep>[]>(
    hostileText(60),
    jsonText,
    fc.constantFrom(
      'debian.img',
      'diskdump',
      'ssh-ed25519 AAAA x',
      '$6$salt$hash',
      'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE',
      'http://h/x.json',
    ),
  );
  /** Secret values carry a marker no message has, so a problem that shows one is a leak. */
  const SECRET_MARK = 'Zq9xSecret';
  const SECRETS = ['img_passwd', 'img_passwd_hash', 'auth_keys', 'cloud_userdata', 'os_product_key'];
  const raw = fc
    .dictionary(fc.constantFrom(...OS_PARAMETER_NAMES), parameterValue, { maxKeys: 12 })
    .map((values) =>
      Object.fromEntries(
        Object.entries(values).map(([k, v]) => [k, SECRETS.includes(k) && v !== '' ? `${jsonOf(v)}${SECRET_MARK}` : v]),
      ),
    );

  it('any parameter values give typed parameters and one-line problems that never show a secret', () => {
    fuzz(
      'OS parameters',
      fc.tuple(raw, fc.boolean()),
      ([values, requireImage]) => {
        // Each run's secrets only: thousands of earlier ones would make every scrub slow.
        clearRegisteredSecrets();
        const { problems } = parseOsParams(
          wrapSecrets(new Map(Object.entries(values).map(([k, v]) => [k, jsonOf(v)]))),
          { imageDir: '/srv/images', requireImage },
        );
        assertOneLine(problems);
        for (const p of problems) assert.ok(!p.includes(SECRET_MARK), `a problem shows a secret value: ${p}`);
      },
      1000,
    );
  });

  it('validateJson describes any value in one-line messages', () => {
    const schema = fc.constantFrom(...(Object.keys(SCHEMAS) as SchemaName[]));
    fuzz(
      'JSON schema messages',
      fc.tuple(schema, hostileJson),
      ([name, data]) => {
        assertOneLine(validateJson(name, data, 'fuzz'));
      },
      1000,
    );
  });
});

describe('fuzz: config_url document (src/ganeti/config-url.ts)', () => {
  const allowed = new Set(Object.keys(SCHEMAS['config-document'].properties));
  const documentText = fc.oneof<fc.Arbitrary<string | Deep | { key: string; deep: Deep }>[]>(
    jsonText,
    fc
      .dictionary(
        fc.oneof(fc.constantFrom(...allowed, ...PROTOTYPE_KEYS, 'IMG_ID'), fc.string({ maxLength: 8 })),
        hostileJson,
        { maxKeys: 6 },
      )
      .map((d) => JSON.stringify(d)),
    fc
      .tuple(fc.constantFrom(...PROTOTYPE_KEYS), fc.constantFrom(...allowed), hostileJson)
      .map(([proto, key, v]) => `{"${proto}": ${JSON.stringify({ [key]: v })}}`),
    fc.record({ key: fc.constantFrom(...allowed), deep: deepJson }),
  );
  const documentOf = (d: string | Deep | { key: string; deep: Deep }) =>
    typeof d === 'object' && 'key' in d ? `{"${d.key}": ${jsonOf(d.deep)}}` : jsonOf(d);
  /** The keys of the document's top-level object, as the server wrote them. */
  const keysOf = (body: string): string[] => {
    try {
      const data: unknown = JSON.parse(body);
      return typeof data === 'object' && data !== null && !Array.isArray(data) ? Object.keys(data) : [];
    } catch {
      return [];
    }
  };

  it('any document gives parameters it names, or a one-line UserError', () => {
    fuzz(
      'config_url document',
      documentText,
      (recipe) => {
        const body = documentOf(recipe);
        clearRegisteredSecrets();
        const params = parseOrRefuse(() => parseConfigDocument(body, 'http://server/doc.json'), [UserError]);
        if (params === undefined) return;
        for (const [key, value] of params) {
          assert.ok(allowed.has(key), `a parameter the document cannot set: ${JSON.stringify(key)}`);
          assert.equal(typeof value, 'string');
        }
        for (const key of keysOf(body))
          assert.ok(allowed.has(key.toLowerCase()), `the unknown key ${JSON.stringify(key)} was accepted`);
      },
      1000,
    );
  });
});
