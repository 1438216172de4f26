/**
 * `rename`: Ganeti runs it after gnt-instance rename (and after an import). It boots the
 * helper VM to run only the hostname task on the guest, unless the task table's decision
 * (the helper's own) says that task would not run: then it says why and boots nothing. Ganeti reports a failing rename
 * script as a warning; the instance is renamed in Ganeti either way.
 */
import { helperNeeded } from '../../helper/plan/decide.ts';
import { log } from '../log/logger.ts';
import { runHelper } from '../helper-vm/run-helper.ts';
import { createMonitor } from '../monitor/progress-monitor.ts';
import { UserError, ValidationError } from '../util/errors.ts';
import type { ScriptContext } from './context.ts';
import { parseOsParams } from './params.ts';
import { hostDecisionInput } from './task-plan.ts';

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
  const verdict = helperNeeded('rename', hostDecisionInput(undefined, properties));
  if (!verdict.boot) {
    log().info(`customization is excluded for this instance: the guest hostname is left as it is (${verdict.why})`);
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
