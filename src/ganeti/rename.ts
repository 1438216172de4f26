/**
 * `rename`: Ganeti runs it after gnt-instance rename (and after an import). Changing the
 * guest's hostname needs the helper VM, which a later version brings; until then rename
 * logs what happened and succeeds, so Ganeti's rename is not reported as failed.
 */
import { log } from '../log/logger.ts';
import type { ScriptContext } from './context.ts';

export async function runRename(ctx: ScriptContext): Promise<void> {
  log().info({ from: ctx.env.oldInstanceName, to: ctx.env.instance?.name }, 'instance renamed; the guest hostname is left unchanged (this version does not rewrite it)');
}
