/**
 * The single executable's main script: picks one of the two bundles embedded as assets,
 * the helper VM's PID 1 (`snf-image helper`, dist/helper.cjs, 0.2 MB) or the CLI
 * (dist/snf-image.cjs, 3.4 MB), and runs it with the V8 code cache the build made for it.
 * Node compiles and deserializes the whole main script at every start: with the CLI as
 * main script the helper's PID 1 spent about a second of its boot under TCG on code it
 * never runs. Kept free of imports but Node's own modules.
 */
import { getAsset } from 'node:sea';
import { Script } from 'node:vm';
import { BUNDLES, bundleWrapper, type BundleName } from './bundles.ts';

const name: BundleName = process.argv[2] === 'helper' ? 'helper' : 'cli';
const bundle = BUNDLES[name];
const source = getAsset(bundle.source, 'utf8');
let cachedData: Buffer | undefined;
try {
  cachedData = Buffer.from(getAsset(bundle.cache));
} catch {
  cachedData = undefined; // built without a cache: compiled from source
}
const script = new Script(bundleWrapper(source), { filename: bundle.filename, ...(cachedData ? { cachedData } : {}) });
const run = script.runInThisContext() as (
  exports: unknown,
  require: NodeJS.Require,
  module: unknown,
  filename: string,
  dirname: string,
) => void;
const module = { exports: {} };
run(module.exports, require, module, bundle.filename, '/');
