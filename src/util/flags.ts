/**
 * Boolean image properties, read as upstream snf-image 0.23 reads them (check_yes_no in
 * snf-image-helper/common.sh.in): yes/true/on/1/set mean yes, no/false/off/0/unset mean no
 * (case-insensitive); an absent property means no; a property that is defined but empty
 * means no, with a warning; any other value means yes, with a warning. Shared by host and
 * helper.
 */
import { oneLine } from './errors.ts';

const YES = new Set(['yes', 'true', 'on', '1', 'set']);
const NO = new Set(['no', 'false', 'off', '0', 'unset']);

/** The boolean image properties (besides EXCLUDE_TASK_<TASK>), as upstream's docs/interface.rst lists them. */
export const FLAG_PROPERTIES = [
  'DO_SYNC',
  'IGNORE_UNATTEND',
  'OFFLINE_NTFSRESIZE',
  'OFFLINE_NTFSRESIZE_NOCHECK',
  'ALLOW_MOUNTED_TASK_OVERWRITING',
  'CLOUD_INIT',
  'NM_NETWORKING',
  'EXCLUDE_ALL_TASKS',
  'EXCLUDE_MOUNTED_TASKS',
  'EXCLUDE_FILESYSTEMRESIZE_TASKS',
] as const;

function isFlagProperty(name: string): boolean {
  return (FLAG_PROPERTIES as readonly string[]).includes(name) || /^EXCLUDE_TASK_[A-Z0-9_]+$/.test(name);
}

/** Normalised value: what upstream compares (lower-case; surrounding blanks ignored). */
const normal = (value: string) => value.trim().toLowerCase();

/** Whether a boolean property means yes (undefined: not given, so no). */
export function isYes(value: string | undefined): boolean {
  if (value === undefined) return false;
  const v = normal(value);
  return v !== '' && !NO.has(v);
}

/** Upstream's warning for a boolean property's value, if it warns about it. */
export function flagWarning(name: string, value: string): string | undefined {
  const v = normal(value);
  if (v === '') return `Variable \`${name}' defined but empty. Will treat this as a \`NO'`;
  if (YES.has(v) || NO.has(v)) return undefined;
  const shown = value.length > 64 ? `${value.slice(0, 64)}...` : value;
  return oneLine(`Invalid value for variable: \`${name}' (=${shown}). Will treat this as a \`YES'`);
}

/** The warnings for every boolean property of a deployment, one per property. */
export function flagWarnings(properties: Readonly<Record<string, string>>): string[] {
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(properties)) {
    if (!isFlagProperty(name)) continue;
    const warning = flagWarning(name, value);
    if (warning) warnings.push(warning);
  }
  return warnings;
}
