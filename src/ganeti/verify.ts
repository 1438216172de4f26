/**
 * `verify parameters`: everything that can be checked without the image. One line per
 * problem on stdout, exit 1; exit 0 when all is well. Ganeti shows the lines to the user.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { loadConfig } from '../config/load.ts';
import { parseImageId } from '../image/image-id.ts';
import { describeError, ValidationError } from '../util/errors.ts';
import { parseGanetiEnv, type Env } from './env.ts';
import { configFileFrom, dropSecretsFromProcessEnv, effectiveParams } from './context.ts';
import { parseOsParams, wrapSecrets } from './params.ts';

const VERIFY_CHECKS = ['parameters'] as const;

/** Ganeti 3.0.2's reinstall without -O stores empty parameters; say so plainly. */
const REINSTALL_HINT =
  'no OS parameters reached snf-image; if this is gnt-instance reinstall, Ganeti 3.0.2 forgets the stored OS parameters after a reinstall: pass them again, e.g. gnt-instance reinstall -O img_id=...,img_format=... INSTANCE';

export function verifyProblems(env: Env): string[] {
  let ganeti: ReturnType<typeof parseGanetiEnv>;
  try {
    ganeti = parseGanetiEnv(env, 'verify');
  } catch (error) {
    return error instanceof ValidationError ? [...error.problems] : [describeError(error)];
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig({ configFile: configFileFrom(env), variant: ganeti.core.variant, requireVariantFile: true });
  } catch (error) {
    return [describeError(error)];
  }
  const merged = effectiveParams(config, ganeti);
  const raw = wrapSecrets(merged);
  dropSecretsFromProcessEnv();

  const imageDir = config.settings.IMAGE_DIR;
  const hasConfigUrl = (merged.get('config_url') ?? '') !== '';
  const { params, problems } = parseOsParams(raw, { imageDir, requireImage: !hasConfigUrl });
  const imageMissing = !hasConfigUrl && (params.imgId === undefined || params.imgFormat === undefined);
  if (imageMissing && ganeti.core.osParams.size === 0) return [REINSTALL_HINT];

  if (params.imgId !== undefined && problems.every((p) => !p.startsWith('img_id:'))) {
    const parsed = parseImageId(params.imgId, imageDir);
    if (parsed.kind === 'local') {
      if (!existsSync(parsed.path))
        problems.push(`img_id: local image '${parsed.name}' not found in IMAGE_DIR ${imageDir}`);
      else {
        const real = realpathSync(parsed.path);
        const realRoot = existsSync(imageDir) ? realpathSync(imageDir) : imageDir;
        if (!real.startsWith(`${realRoot}/`))
          problems.push(`img_id: local image '${parsed.name}' resolves outside IMAGE_DIR ${imageDir}`);
        else if (!statSync(real).isFile()) problems.push(`img_id: local image '${parsed.name}' is not a regular file`);
      }
    }
  }
  return problems;
}

export function runVerify(args: readonly string[], env: Env, out: (line: string) => void): number {
  const check = args[0];
  if (args.length !== 1 || check === undefined || !(VERIFY_CHECKS as readonly string[]).includes(check)) {
    out(`usage: verify parameters (snf-image supports the checks: ${VERIFY_CHECKS.join(', ')})`);
    return 1;
  }
  const problems = verifyProblems(env);
  for (const problem of problems) out(problem);
  return problems.length === 0 ? 0 : 1;
}
