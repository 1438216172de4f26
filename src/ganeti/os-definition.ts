/**
 * `install-os DIR`: writes a complete Ganeti OS definition (API 20) whose scripts are
 * links to the snf-image binary, which dispatches on the name it was called by. Missing
 * variant files and the configuration file are installed too; existing ones are kept.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { renderDefaultConfigFile, DEFAULT_CONFIG_FILE } from '../config/load.ts';
import { readAssetText } from '../util/assets.ts';
import { renderParametersList } from './os-parameters.ts';

export const GANETI_SCRIPTS = ['create', 'import', 'export', 'rename', 'verify'] as const;
export type GanetiScript = (typeof GANETI_SCRIPTS)[number];

/** Variant files shipped in the binary (variants/ in the repository). */
const BUNDLED_VARIANTS = ['default'] as const;

export interface InstallOsOptions {
  dir: string;
  binary: string;
  variantsDir: string;
  configFile?: string;
}

function atomicWrite(path: string, content: string, mode = 0o644): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, path);
}

function atomicSymlink(target: string, path: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, path);
}

/** Variant names: the *.conf files of the variants directory, `default` first. */
export function listVariants(variantsDir: string): string[] {
  const names = existsSync(variantsDir)
    ? readdirSync(variantsDir)
        .filter((f) => f.endsWith('.conf') && !f.startsWith('.'))
        .map((f) => f.slice(0, -5))
    : [];
  if (!names.includes('default')) names.push('default');
  return names.sort((a, b) => (a === 'default' ? -1 : b === 'default' ? 1 : a.localeCompare(b)));
}

export function installOsDefinition(options: InstallOsOptions): string[] {
  const done: string[] = [];
  mkdirSync(options.dir, { recursive: true, mode: 0o755 });
  mkdirSync(options.variantsDir, { recursive: true, mode: 0o755 });
  for (const name of BUNDLED_VARIANTS) {
    const file = join(options.variantsDir, `${name}.conf`);
    if (!existsSync(file)) {
      atomicWrite(file, readAssetText(`variants/${name}.conf`));
      done.push(`wrote ${file}`);
    }
  }
  const configFile = options.configFile ?? DEFAULT_CONFIG_FILE;
  if (!existsSync(configFile)) {
    mkdirSync(dirname(configFile), { recursive: true, mode: 0o755 });
    atomicWrite(configFile, renderDefaultConfigFile());
    done.push(`wrote ${configFile}`);
  }
  atomicWrite(join(options.dir, 'ganeti_api_version'), '20\n');
  atomicWrite(join(options.dir, 'variants.list'), `${listVariants(options.variantsDir).join('\n')}\n`);
  atomicWrite(join(options.dir, 'parameters.list'), renderParametersList());
  for (const script of GANETI_SCRIPTS) atomicSymlink(options.binary, join(options.dir, script));
  done.push(`wrote OS definition ${options.dir} (scripts link to ${options.binary})`);
  return done;
}
