/**
 * `create`: validate every input, then write the image to disk 0 and customize it.
 */
import { log } from '../log/logger.ts';
import { UserError, ValidationError } from '../util/errors.ts';
import { applyConfigDocument, fetchConfigDocument } from './config-url.ts';
import type { ScriptContext } from './context.ts';
import { parseOsParams, type OsParams } from './params.ts';

/** Resolves config_url and checks all parameters; nothing touches the disk before this. */
export async function resolveCreateParams(ctx: ScriptContext): Promise<OsParams> {
  let raw = ctx.params;
  const configUrl = raw.get('config_url');
  if (typeof configUrl === 'string' && configUrl !== '') {
    const first = parseOsParams(raw, { imageDir: ctx.config.settings.IMAGE_DIR, requireImage: false });
    const urlProblems = first.problems.filter((p) => p.startsWith('config_url:'));
    if (urlProblems.length > 0) throw new ValidationError(urlProblems);
    log().info('fetching config_url document');
    const document = await fetchConfigDocument(configUrl, { timeoutSeconds: ctx.config.settings.CONFIG_URL_TIMEOUT, maxBytes: ctx.config.settings.CONFIG_URL_MAX_SIZE });
    raw = applyConfigDocument(raw, document);
    log().info({ keys: [...document.keys()] }, 'config_url document applied');
  }
  const { params, problems } = parseOsParams(raw, { imageDir: ctx.config.settings.IMAGE_DIR, requireImage: true });
  if (problems.length > 0) throw new ValidationError(problems);
  return params;
}

export async function runCreate(ctx: ScriptContext): Promise<void> {
  const instance = ctx.env.instance;
  if (!instance) throw new UserError('INSTANCE_NAME: missing');
  const params = await resolveCreateParams(ctx);
  log().info({ instance: instance.name, img_id: params.imgId, img_format: params.imgFormat, reinstall: instance.reinstall }, 'deploying image');
  throw new UserError('create: image deployment is not available in this build yet');
}
