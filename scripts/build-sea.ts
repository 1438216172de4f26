/**
 * Turns the bundles into dist/snf-image: a copy of the pinned Node runtime with the
 * application blob injected (the launcher as main script; the CLI and helper bundles,
 * their V8 code caches and the other files as assets), runnable with no Node installed.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { inject } from 'postject';
import { BUNDLES } from '../src/sea/bundles.ts';
import { ASSET_NAMES } from '../src/util/assets.ts';

// The executable's V8 flags; a code cache is accepted only by a V8 with the same flags,
// so the caches are made by this same runtime started with them.
const EXEC_ARGV = ['--max-semi-space-size=2'];
for (const bundle of Object.values(BUNDLES)) {
  execFileSync(
    process.execPath,
    [...EXEC_ARGV, 'scripts/make-code-cache.ts', bundle.source, bundle.cache, bundle.filename, ...bundle.warmArgs],
    { stdio: 'inherit' },
  );
}
const bundleAssets = Object.values(BUNDLES).flatMap((b) => [b.source, b.cache]);

const output = 'dist/snf-image';
const blob = 'dist/sea-prep.blob';
const seaConfig = {
  main: 'dist/launcher.cjs',
  output: blob,
  disableExperimentalSEAWarning: true,
  useCodeCache: true,
  useSnapshot: false,
  // The binary runs as root (Ganeti's OS scripts, the helper's PID 1): NODE_OPTIONS from
  // the environment must not be able to add --require or other runtime flags to it.
  execArgvExtension: 'none',
  // A young generation of 2 MiB semi-spaces instead of 16: the image pipeline's garbage is
  // short-lived chunks, and the default let the heap hold ~28 MB more than it uses
  // (peak RSS of a raw deploy 151 -> 141 MB, zstd 149 -> 131 MB, measured).
  execArgv: EXEC_ARGV,
  assets: Object.fromEntries([...ASSET_NAMES, ...bundleAssets].map((name) => [name, name])),
};
writeFileSync('dist/sea-config.json', JSON.stringify(seaConfig, null, 2));
execFileSync(process.execPath, ['--experimental-sea-config', 'dist/sea-config.json'], { stdio: 'inherit' });

rmSync(output, { force: true });
copyFileSync(process.execPath, output);
chmodSync(output, 0o755);
await inject(output, 'NODE_SEA_BLOB', readFileSync(blob), {
  sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
});
rmSync(blob);
console.log(`built ${output} (Node ${process.version} runtime)`);
