/**
 * npm run bench: the image deployment benchmark, then the helper VM boot benchmark.
 * Needs root. Extra arguments go to both (e.g. --runs 5). With --customize (needs
 * libguestfs-tools) the virt-customize comparison runs too.
 */
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2).filter((a) => a !== '--customize');
for (const bench of [
  'test/bench/image-bench.ts',
  'test/bench/helper-bench.ts',
  ...(process.argv.includes('--customize') ? ['test/bench/customize-bench.ts'] : []),
]) {
  console.log(`\n== ${bench}`);
  const r = spawnSync(process.execPath, [bench, ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exitCode = 1;
}
