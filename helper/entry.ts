/**
 * Entry point of the helper bundle (dist/helper.cjs), which the single executable runs for
 * `snf-image helper`: the helper VM's PID 1 and nothing else.
 */
import { helperMain } from './main.ts';

helperMain().catch((error: unknown) => {
  process.stderr.write(`snf-image helper: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
