/**
 * Effective configuration: defaults, then /etc/snf-image/snf-image.conf, then the variant
 * file. Keys that name OS parameters (IMG_FORMAT=diskdump) preset those parameters; the
 * OSP_* values Ganeti passes win over them. Unknown keys are reported as warnings; bad
 * values fail naming the file, the key and the rule.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.ts';
import { isOsParameterName } from '../ganeti/os-parameters.ts';
import { parseShellConf } from './shell-conf.ts';
import { isSettingKey, SETTING_KEYS, SETTINGS, type SettingKey, type Settings } from './settings.ts';

export const DEFAULT_CONFIG_FILE = '/etc/snf-image/snf-image.conf';

/** Keys of upstream snf-image that this implementation no longer reads. */
const RETIRED_KEYS: Readonly<Record<string, string>> = {
  HELPER_SIZE: 'the helper image size is fixed at build time',
  HELPER_URL: 'the helper is built locally by snf-image-update-helper',
  HELPER_PKG: 'the helper is built locally by snf-image-update-helper',
  MULTISTRAP_CONFIG: 'the helper is built with debootstrap',
  MULTISTRAP_APTPREFDIR: 'the helper is built with debootstrap',
  XEN_SCRIPTS_DIR: 'the helper VM always runs under QEMU',
  XEN_CMD: 'the helper VM always runs under QEMU',
  UNATTEND: 'use the os_answer_file OS parameter',
  VERSION_CHECK: 'obsolete since upstream 0.22',
  KVM: 'use QEMU',
};
const TOOL_KEYS = [
  'AWK',
  'LOSETUP',
  'TIMEOUT',
  'CURL',
  'TAR',
  'DATE',
  'MD5SUM',
  'BLOCKDEV',
  'DD',
  'PARTED',
  'KPARTX',
  'SFDISK',
  'INSTALL_MBR',
];

export interface LoadedConfig {
  settings: Settings;
  /** Where each non-default setting came from ("file:line"). */
  origins: Readonly<Partial<Record<SettingKey, string>>>;
  /** OS parameter presets from the files, by lower-case parameter name. */
  paramDefaults: ReadonlyMap<string, string>;
  warnings: string[];
  files: string[];
}

export interface LoadOptions {
  configFile?: string;
  /** Variant name; its file is VARIANTS_DIR/<variant>.conf. '' or undefined: no variant file. */
  variant?: string | undefined;
  /** A missing variant file is an error (true for Ganeti scripts) or ignored. */
  requireVariantFile?: boolean;
}

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const configFile = options.configFile ?? DEFAULT_CONFIG_FILE;
  const raw = new Map<SettingKey, { value: string; origin: string }>();
  const paramDefaults = new Map<string, string>();
  const warnings: string[] = [];
  const files: string[] = [];

  const apply = (file: string) => {
    const text = readFileSync(file, 'utf8');
    files.push(file);
    const lookup = (name: string) => (isSettingKey(name) ? raw.get(name)?.value : undefined);
    for (const entry of parseShellConf(text, file, lookup)) {
      const where = `${file}:${entry.line}`;
      if (isSettingKey(entry.key)) raw.set(entry.key, { value: entry.value, origin: where });
      else if (isOsParameterName(entry.key.toLowerCase()) && entry.key === entry.key.toUpperCase())
        paramDefaults.set(entry.key.toLowerCase(), entry.value);
      else if (entry.key in RETIRED_KEYS)
        warnings.push(`${where}: ${entry.key} is no longer used (${RETIRED_KEYS[entry.key]})`);
      else if (TOOL_KEYS.includes(entry.key))
        warnings.push(`${where}: ${entry.key} is no longer used (snf-image does not run that tool)`);
      else warnings.push(`${where}: unknown key ${entry.key} ignored`);
    }
  };

  if (existsSync(configFile)) apply(configFile);
  else if (options.configFile !== undefined) throw new UserError(`configuration file ${configFile} does not exist`);

  const variantsDir = raw.get('VARIANTS_DIR')?.value ?? SETTINGS.VARIANTS_DIR.default;
  if (options.variant) {
    if (!/^[A-Za-z0-9_.-]+$/.test(options.variant) || options.variant.startsWith('.')) {
      throw new UserError(`OS_VARIANT: '${options.variant}' is not a valid variant name`);
    }
    const variantFile = join(variantsDir, `${options.variant}.conf`);
    if (existsSync(variantFile)) apply(variantFile);
    else if (options.requireVariantFile)
      throw new UserError(`OS_VARIANT: no variant file ${variantFile} for variant '${options.variant}'`);
  }

  const settings: Record<string, unknown> = {};
  const origins: Partial<Record<SettingKey, string>> = {};
  const problems: string[] = [];
  for (const key of SETTING_KEYS) {
    const given = raw.get(key);
    const text = given?.value ?? SETTINGS[key].default;
    const result = SETTINGS[key].schema.safeParse(text);
    if (result.success) settings[key] = result.data;
    else
      problems.push(
        `${given ? `${given.origin}: ` : ''}${key}: ${result.error.issues[0]?.message ?? 'invalid'} (got '${text}')`,
      );
    if (given) origins[key] = given.origin;
  }
  if (problems.length > 0) throw new UserError(problems.join('; '));
  if (origins.HELPER_USER && !origins.HELPER_UIDS && settings.HELPER_UIDS !== undefined) {
    warnings.push(
      `${origins.HELPER_USER}: HELPER_USER is used only when HELPER_UIDS is empty; each helper VM runs under a uid of its own from HELPER_UIDS=${SETTINGS.HELPER_UIDS.default} (set HELPER_UIDS= to keep one user)`,
    );
  }
  return { settings: settings as Settings, origins, paramDefaults, warnings, files };
}

/** The text of `snf-image config`: every key with its effective value and where it came from. */
export function renderEffectiveConfig(config: LoadedConfig): string {
  const lines: string[] = [
    `# files read: ${config.files.length > 0 ? config.files.join(', ') : '(none; built-in defaults)'}`,
  ];
  for (const key of SETTING_KEYS) {
    const value = config.settings[key];
    const text = Array.isArray(value)
      ? value.join(' ')
      : value instanceof Map
        ? [...value].map(([k, v]) => `${String(k)}=${String(v)}`).join(' ')
        : typeof value === 'boolean'
          ? value
            ? 'yes'
            : 'no'
          : value === undefined
            ? ''
            : typeof value === 'object' && value !== null && 'first' in value && 'last' in value
              ? `${String(value.first)}-${String(value.last)}`
              : String(value);
    lines.push(`${key}=${shellQuote(text)}${config.origins[key] ? `  # ${config.origins[key]}` : ''}`);
  }
  for (const [name] of config.paramDefaults) lines.push(`${name.toUpperCase()}=...  # OS parameter preset`);
  for (const warning of config.warnings) lines.push(`# warning: ${warning}`);
  return `${lines.join('\n')}\n`;
}

/** The shipped configuration file: every key commented out at its default. */
export function renderDefaultConfigFile(): string {
  const lines = [
    '# snf-image configuration. Shell-style KEY=VALUE lines; nothing is executed.',
    '# Every key is shown with its default value. See snf-image.conf(5).',
    '',
  ];
  for (const key of SETTING_KEYS) {
    lines.push(`# ${SETTINGS[key].description}`, `#${key}=${shellQuote(SETTINGS[key].default)}`, '');
  }
  return lines.join('\n');
}

function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(text) ? text : `"${text.replace(/(["\\$`])/g, '\\$1')}"`;
}
