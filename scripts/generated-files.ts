/**
 * What `npm run generate` writes, from the tables: the image properties schema (from the
 * property table, the OS family list and the excludable tasks) and the README's task,
 * property and configuration tables (between `<!-- generated: NAME -->` and `<!-- end generated: NAME -->`).
 * test/unit/generated.test.ts fails when a file differs from what this makes.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OS_FAMILIES, type OsFamily } from '../helper/plan/families.ts';
import { excludeTaskProperty, PROPERTIES, type PropertySpec } from '../helper/plan/properties.ts';
import { TASK_SPECS, type TaskDeclaration } from '../helper/plan/task-specs.ts';
import { SETTING_KEYS, SETTINGS } from '../src/config/settings.ts';

const ROOT = join(import.meta.dirname, '..');
const SCHEMA_PATH = 'src/schemas/img-properties.schema.json';

const EXCLUDABLE = TASK_SPECS.filter((t) => t.attributes.excludable);

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

function propertySchema(spec: PropertySpec): { [key: string]: Json } {
  const type = spec.type;
  const description = `${spec.meaning} (default: ${spec.default})`;
  switch (type.kind) {
    case 'flag':
      return { $ref: '#/definitions/flag', description };
    case 'family':
      return { enum: [...OS_FAMILIES], description };
    case 'partition':
      return {
        oneOf: [
          { type: 'integer', minimum: 1, maximum: 128 },
          { type: 'string', pattern: '^(?:[1-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$' },
        ],
        description,
      };
    case 'enum':
      return { enum: [...type.values], description };
    case 'pattern':
      return { type: 'string', pattern: type.pattern, description };
  }
}

/** src/schemas/img-properties.schema.json, before formatting. */
function propertiesSchema(): Json {
  const properties: { [key: string]: Json } = {};
  for (const spec of PROPERTIES) properties[spec.name] = propertySchema(spec);
  for (const task of EXCLUDABLE)
    properties[excludeTaskProperty(task.name)] = { $ref: '#/definitions/flag', description: `skip ${task.name}` };
  const valid = EXCLUDABLE.map((t) => t.name.toUpperCase()).join('|');
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://snf-image.invalid/schemas/img-properties.schema.json',
    title: 'snf-image image properties (img_properties, inst_properties)',
    description:
      "A JSON object of image properties, generated from helper/plan/properties.ts and the task table (npm run generate). Names are case-insensitive (snf-image upper-cases them before validating); values are strings, numbers or booleans. Booleans may also be given as yes/no, true/false, on/off, 1/0, set/unset. EXCLUDE_TASK_<Task> must name a task that can be excluded; other names are the image's own (custom tasks see them).",
    type: 'object',
    propertyNames: { pattern: '^[A-Z][A-Z0-9_]*$' },
    additionalProperties: { type: ['string', 'number', 'boolean'] },
    properties,
    patternProperties: { [`^EXCLUDE_TASK_(?!(?:${valid})$)`]: false },
    definitions: {
      flag: {
        description:
          "A boolean property, read as upstream's check_yes_no: yes/true/on/1/set (any case) mean yes, no/false/off/0/unset mean no; empty means no and any other value yes, each with a warning.",
        type: ['string', 'number', 'boolean'],
      },
    },
  };
}

/** JSON as Biome formats it (the tree is checked with `biome check`). */
function formatJson(path: string, value: Json): string {
  const r = spawnSync(join(ROOT, 'node_modules/.bin/biome'), ['format', `--stdin-file-path=${path}`], {
    cwd: ROOT,
    input: `${JSON.stringify(value, null, 2)}\n`,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`biome format ${path} failed: ${r.stderr}`);
  return r.stdout;
}

const FAMILY_GROUPS: readonly [string, readonly OsFamily[]][] = [
  ['Linux', ['linux']],
  ['Windows', ['windows', 'windows-legacy']],
  ['BSD', ['freebsd', 'openbsd', 'netbsd']],
];

function familiesText(families: readonly OsFamily[]): string {
  if (OS_FAMILIES.every((f) => families.includes(f))) return 'all';
  const groups = FAMILY_GROUPS.filter(([, members]) => members.every((f) => families.includes(f)));
  const grouped = new Set(groups.flatMap(([, members]) => members));
  return [...groups.map(([name]) => name), ...families.filter((f) => !grouped.has(f))].join(', ');
}

const NEEDS: Record<TaskDeclaration['requires'][number], string> = {
  'password-or-keys': '`img_passwd`, `img_passwd_hash` or `auth_keys`',
  personality: '`img_personality`',
  swap: '`SWAP`',
  'custom-task': '`CUSTOM_TASK`',
  'cloud-init': '`CLOUD_INIT`',
};

function excludedBy(task: TaskDeclaration): string {
  const a = task.attributes;
  const by = [
    a.excludable ? `\`EXCLUDE_TASK_${task.name}\`` : '',
    a.fsResize ? '`EXCLUDE_FILESYSTEMRESIZE_TASKS`' : '',
    a.mounted ? '`EXCLUDE_MOUNTED_TASKS`' : '',
    a.cloudInitExcludable ? '`CLOUD_INIT`' : '',
  ].filter(Boolean);
  return by.length > 0 ? by.join(', ') : '—';
}

/** Text for a Markdown table cell: | escaped, and < > outside `code` so that they are not read as HTML. */
function cell(text: string): string {
  return text
    .split('`')
    .map((part, i) => (i % 2 === 1 ? part : part.replaceAll('<', '&lt;').replaceAll('>', '&gt;')))
    .join('`')
    .replaceAll('|', '\\|');
}

function taskTable(): string {
  const rows = [...TASK_SPECS]
    .sort((a, b) => a.order - b.order)
    .map((t) => {
      const name = (t.operations as readonly string[]).includes('rename') ? `${t.name} (also on rename)` : t.name;
      const needs = t.requires.length > 0 ? t.requires.map((r) => NEEDS[r]).join(', ') : '—';
      return `| ${t.order} | ${name} | ${familiesText(t.families)} | ${cell(t.description)} | ${needs} | ${excludedBy(t)} |`;
    });
  return [
    '| order | task | families | what it does | runs only with | skipped by |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

function typeText(spec: PropertySpec): string {
  const type = spec.type;
  switch (type.kind) {
    case 'flag':
      return 'yes/no';
    case 'family':
      return OS_FAMILIES.map((f) => `\`${f}\``).join(', ');
    case 'partition':
      return 'partition number 1-128';
    case 'enum':
      return type.values.map((v) => `\`${v}\``).join(', ');
    case 'pattern':
      return type.form;
  }
}

function propertyTable(): string {
  const rows = PROPERTIES.map(
    (p) =>
      `| \`${p.name}\` | ${cell(typeText(p))} | ${cell(p.default)} | ${cell(p.meaning)} | ${p.readBy.join(', ')} |`,
  );
  rows.push(
    `| \`EXCLUDE_TASK_<Task>\` | yes/no | no | skip the task; \`<Task>\` (any case) is one of ${EXCLUDABLE.map((t) => t.name).join(', ')}: another name is refused | that task |`,
  );
  return ['| property | value | default | meaning | read by |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

/** The configuration keys (src/config/settings.ts) with their defaults and descriptions. */
function configurationTable(): string {
  const rows = SETTING_KEYS.map((key) => {
    const { default: value, description } = SETTINGS[key];
    return `| \`${key}\` | ${value === '' ? '*(empty)*' : `\`${value}\``} | ${cell(description)} |`;
  });
  return ['| key | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** Replaces the text between the markers of section `name`; the markers must be there. */
function withSection(text: string, path: string, name: string, body: string): string {
  const begin = `<!-- generated: ${name} (npm run generate) -->`;
  const end = `<!-- end generated: ${name} -->`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${path}: the markers of the generated section ${name} are missing`);
  return `${text.slice(0, i + begin.length)}\n${body}\n${text.slice(j)}`;
}

export interface GeneratedFile {
  path: string;
  content: string;
}

/** Every generated file with the content the tables give it (paths relative to the repository). */
export function generatedFiles(): GeneratedFile[] {
  let readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  readme = withSection(readme, 'README.md', 'tasks', taskTable());
  readme = withSection(readme, 'README.md', 'properties', propertyTable());
  readme = withSection(readme, 'README.md', 'configuration', configurationTable());
  return [
    { path: SCHEMA_PATH, content: formatJson(SCHEMA_PATH, propertiesSchema()) },
    { path: 'README.md', content: readme },
  ];
}
