/**
 * `rename`: Ganeti runs it after gnt-instance rename (and after an import). It boots the
 * helper VM to run only the hostname task on the guest. Ganeti reports a failing rename
 * script as a warning; the instance is renamed in Ganeti either way.
 */
import { log } from '../log/logger.ts';
import { runHelper } from '../helper-vm/run-helper.ts';
import { createMonitor } from '../monitor/progress-monitor.ts';
import { isYes } from '../util/flags.ts';
import { UserError, ValidationError } from '../util/errors.ts';
import type { ScriptContext } from './context.ts';
import { parseOsParams } from './params.ts';

export async function runRename(ctx: ScriptContext): Promise<void> {
  const instance = ctx.env.instance;
  if (!instance) throw new UserError('INSTANCE_NAME: missing');
  const { params, problems } = parseOsParams(ctx.params, {
    imageDir: ctx.config.settings.IMAGE_DIR,
    requireImage: false,
  });
  if (problems.length > 0) throw new ValidationError(problems);
  const properties = { ...params.imgProperties, ...params.instProperties };
  log().info({ from: ctx.env.oldInstanceName, to: instance.name }, 'instance renamed');
  if (isYes(properties.EXCLUDE_ALL_TASKS) || isYes(properties.EXCLUDE_TASK_ASSIGNHOSTNAME)) {
    log().info('customization is excluded for this instance: the guest hostname is left as it is');
    return;
  }
  const monitor = createMonitor(ctx.config.settings.PROGRESS_MONITOR, instance.name);
  try {
    const outcome = await runHelper({
      operation: 'rename',
      instance,
      params: undefined,
      properties,
      settings: ctx.config.settings,
      monitor,
      oldHostname: ctx.env.oldInstanceName,
    });
    if (!outcome.ok) throw new UserError(`the guest hostname was not changed: ${outcome.message}`);
    log().info({ guest: instance.name }, 'guest hostname changed');
  } finally {
    await monitor.close();
  }
}
