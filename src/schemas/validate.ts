/**
 * JSON Schema validation (ajv) of user JSON: image properties, personality, config_url
 * documents and monitor messages. The schemas are published in this directory.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import imgProperties from './img-properties.schema.json' with { type: 'json' };
import imgPersonality from './img-personality.schema.json' with { type: 'json' };
import configDocument from './config-document.schema.json' with { type: 'json' };
import monitorMessage from './monitor-message.schema.json' with { type: 'json' };
import { oneLine } from '../util/errors.ts';

export const SCHEMAS = {
  'img-properties': imgProperties,
  'img-personality': imgPersonality,
  'config-document': configDocument,
  'monitor-message': monitorMessage,
} as const;

export type SchemaName = keyof typeof SCHEMAS;

const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
const compiled = new Map<SchemaName, ValidateFunction>();

function validator(name: SchemaName): ValidateFunction {
  let fn = compiled.get(name);
  if (!fn) {
    fn = ajv.compile(SCHEMAS[name]);
    compiled.set(name, fn);
  }
  return fn;
}

/** Keeps the most specific errors: oneOf/anyOf wrappers say less than their branches. */
function describe(errors: readonly ErrorObject[], label: string): string[] {
  const specific = errors.filter((e) => !['oneOf', 'anyOf', 'if', 'allOf'].includes(e.keyword));
  const chosen = specific.length > 0 ? specific : errors;
  const lines = chosen.map((e) => {
    const where = e.instancePath === '' ? label : `${label}${e.instancePath.replaceAll('/', '.')}`;
    if (e.keyword === 'additionalProperties') return `${where}: unknown key '${String(e.params.additionalProperty)}'`;
    if (e.keyword === 'enum')
      return `${where}: must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    if (e.keyword === 'pattern') return `${where}: has an invalid value (${explainPattern(e.schemaPath)})`;
    return `${where}: ${e.message ?? 'is invalid'}`;
  });
  // Keys come from the user's JSON and may hold line breaks: each problem stays one line.
  return [...new Set(lines.map(oneLine))];
}

function explainPattern(schemaPath: string): string {
  if (schemaPath.includes('propertyNames')) return 'property names are letters, digits and _';
  if (schemaPath.includes('/path/')) return 'must be an absolute path without . or .. components';
  if (schemaPath.includes('/contents/') || schemaPath.includes('CUSTOM_TASK')) return 'must be base64';
  if (schemaPath.includes('ROOT_PARTITION')) return 'must be a partition number from 1 to 128';
  if (schemaPath.includes('SWAP')) return 'must be <partition number>:<size in MB> or a disk letter b-z';
  if (schemaPath.includes('USERS')) return 'must be user names separated by spaces';
  if (schemaPath.includes('owner') || schemaPath.includes('group')) return 'must be a user/group name or a number';
  if (schemaPath.includes('SHA')) return 'must be a hex digest';
  return 'does not match the expected form';
}

/** Validates `data`; returns one line per problem, each starting with `label`. */
export function validateJson(name: SchemaName, data: unknown, label: string): string[] {
  const fn = validator(name);
  if (fn(data)) return [];
  return describe(fn.errors ?? [], label);
}
