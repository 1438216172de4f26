/**
 * Turns dist/snf-image.cjs into dist/snf-image: a copy of the pinned Node runtime with the
 * application blob (code cache and assets) injected, runnable with no Node installed.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { inject } from 'postject';
import { ASSET_NAMES } from '../src/util/assets.ts';

const output = 'dist/snf-image';
const blob = 'dist/sea-prep.blob';
const seaConfig = {
  main: 'dist/snf-image.cjs',
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
  execArgv: ['--max-semi-space-size=2'],
  assets: Object.fromEntries(ASSET_NAMES.map((name) => [name, name])),
};
writeFileSync('dist/sea-config.json', JSON.stringify(seaConfig, null, 2));
execFileSync(process.execPath, ['--experimental-sea-config', 'dist/sea-config.json'], { stdio: 'inherit' });

rmSync(output, { force: true });
copyFileSync(process.execPath, output);
chmodSync(output, 0o755);
await inject(output, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
rmSync(blob);
console.log(`built ${output} (Node ${process.version} runtime)`);
