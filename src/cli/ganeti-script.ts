/**
 * Runs one Ganeti OS script (create, import, export, rename, verify) the way Ganeti calls
 * it: parameters from the environment, errors as one line on stderr, exit code 1 on failure.
 */
import { loadScriptContext } from '../ganeti/context.ts';
import type { GanetiScript } from '../ganeti/os-definition.ts';
import { runExport, runImport } from '../ganeti/export-import.ts';
import { runRename } from '../ganeti/rename.ts';
import { runCreate } from '../ganeti/create.ts';
import { runVerify } from '../ganeti/verify.ts';
import { log } from '../log/logger.ts';
import { startTerminalView } from './terminal-mode.ts';
import { describeError, UserError, ValidationError } from '../util/errors.ts';
import { scrub } from '../util/secret.ts';
import type { Env } from '../ganeti/env.ts';

const USAGE: Readonly<Record<GanetiScript, string>> = {
  create:
    'create (no arguments): deploy img_id onto DISK_0_PATH and customize it; parameters come from Ganeti environment variables',
  import: 'import (no arguments): write the dump on stdin to IMPORT_DISK_PATH',
  export: 'export (no arguments): write EXPORT_DISK_PATH to stdout',
  rename: 'rename (no arguments): change the guest hostname from OLD_INSTANCE_NAME to INSTANCE_NAME',
  verify: 'verify parameters: check the OS parameters in OSP_* variables',
};

export async function runGanetiScript(script: GanetiScript, args: readonly string[], env: Env): Promise<number> {
  if (args.includes('-h') || args.includes('--help') || (script !== 'verify' && args.length > 0)) {
    process.stderr.write(`usage: ${USAGE[script]}\n`);
    return args.includes('-h') || args.includes('--help') ? 0 : 1;
  }
  if (script === 'verify') return runVerify(args, env, (line) => void process.stdout.write(`${scrub(line)}\n`));
  try {
    const ctx = loadScriptContext(script, env);
    if (script === 'create') await runCreate(ctx, { customize: true, view: startTerminalView(ctx, false) });
    else if (script === 'import') await runImport(ctx);
    else if (script === 'export') await runExport(ctx);
    else await runRename(ctx);
    return 0;
  } catch (error) {
    if (error instanceof ValidationError) for (const problem of error.problems) log().error(problem);
    else log().error(describeError(error));
    if (!(error instanceof UserError) && error instanceof Error && error.stack) log().debug(scrub(error.stack));
    return error instanceof UserError ? error.exitCode : 1;
  }
}
