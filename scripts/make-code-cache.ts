/**
 * Writes the V8 code cache of one bundle, for the launcher (src/sea/launcher.ts):
 *   node --max-semi-space-size=2 scripts/make-code-cache.ts SOURCE CACHE FILENAME [ARG...]
 * Run by scripts/build-sea.ts with the executable's V8 flags: V8 accepts a cache only from
 * a V8 of the same version with the same flags.
 *
 * The cache is taken after the bundle has run once with ARGs (e.g. `--version`), so it
 * holds the bytecode of every function its modules' initialisation compiled, not only
 * the top level: a cache made before running holds the outer function alone, and each
 * start then compiles the module bodies again (0.14 -> 0.10 s for `snf-image --version`
 * here). The run's output is discarded and its exit intercepted.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Script } from 'node:vm';
import { bundleWrapper } from '../src/sea/bundles.ts';

const [source, cache, filename, ...args] = process.argv.slice(2);
if (!source || !cache || !filename) {
  console.error('usage: make-code-cache.ts SOURCE CACHE FILENAME [ARG...]');
  process.exit(2);
}
const script = new Script(bundleWrapper(readFileSync(source, 'utf8')), { filename });

let written = false;
function writeCache(): void {
  if (written) return;
  written = true;
  writeFileSync(cache as string, script.createCachedData());
}

const realExit = process.exit.bind(process);
process.exit = ((_code?: number) => {
  writeCache();
  realExit(0);
}) as typeof process.exit;
process.stdout.write = (() => true) as typeof process.stdout.write;
process.stderr.write = (() => true) as typeof process.stderr.write;
process.argv = [process.argv[0] as string, filename, ...args];
process.on('beforeExit', () => {
  writeCache();
  process.exitCode = 0;
});

const run = script.runInThisContext() as (
  exports: object,
  require: NodeJS.Require,
  module: object,
  filename: string,
  dirname: string,
) => void;
const module = { exports: {} };
try {
  run(module.exports, createRequire(import.meta.filename), module, filename, '/');
} catch {
  // The bundle's own failure outside its environment (e.g. the helper outside its VM)
  // does not matter: its modules are initialised by then.
}
// Whatever the bundle leaves running (timers, handles) must not hold the build.
setTimeout(() => {
  writeCache();
  realExit(0);
}, 2000).unref();
