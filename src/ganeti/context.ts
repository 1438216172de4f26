/**
 * What every Ganeti entry point starts from: the parsed environment, the effective
 * configuration (main file, then variant file) and the OS parameters (configuration
 * presets, overridden by Ganeti's OSP_* values). Secret OSP_* variables are removed from
 * this process's environment once read, so no child process can inherit them.
 */
import { loadConfig, type LoadedConfig } from '../config/load.ts';
import { configureLogging, log } from '../log/logger.ts';
import { parseGanetiEnv, type Env, type GanetiEnv, type ScriptName } from './env.ts';
import { osParameterEnvName, SECRET_PARAMETER_NAMES } from './os-parameters.ts';
import { wrapSecrets, type RawParams } from './params.ts';
import type { Secret } from '../util/secret.ts';

export interface ScriptContext {
  env: GanetiEnv;
  config: LoadedConfig;
  params: RawParams;
}

/** Where the configuration file is: SNF_IMAGE_CONFIG (tests, manual runs) or the default. */
export function configFileFrom(env: Env): string | undefined {
  return env.SNF_IMAGE_CONFIG || undefined;
}

export function dropSecretsFromProcessEnv(): void {
  for (const name of SECRET_PARAMETER_NAMES) delete process.env[osParameterEnvName(name)];
}

/** OS parameters: configuration presets, overridden by the OSP_* values Ganeti passes. */
export function effectiveParams(config: LoadedConfig, ganeti: GanetiEnv): Map<string, string> {
  const merged = new Map<string, string>(config.paramDefaults);
  for (const [name, value] of ganeti.core.osParams) merged.set(name, value);
  return merged;
}

export function loadScriptContext(script: ScriptName, env: Env): ScriptContext {
  const ganeti = parseGanetiEnv(env, script);
  const config = loadConfig({
    configFile: configFileFrom(env),
    variant: ganeti.core.variant,
    requireVariantFile: true,
  });
  configureLogging({
    format: config.settings.LOG_FORMAT,
    level: config.settings.IMAGE_DEBUG || ganeti.core.debugLevel > 0 ? 'debug' : 'info',
  });
  for (const warning of config.warnings) log().warn(warning);
  const params: Map<string, string | Secret> = wrapSecrets(effectiveParams(config, ganeti));
  dropSecretsFromProcessEnv();
  return { env: ganeti, config, params };
}
