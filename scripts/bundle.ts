/**
 * Bundles src/cli/main.ts and everything it imports into one CommonJS file, the input of
 * the single executable (Node's SEA runs a single CommonJS script).
 */
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
const versionSource = readFileSync('src/version.ts', 'utf8');
if (!versionSource.includes(`'${pkg.version}'`)) {
  console.error(`src/version.ts does not say ${pkg.version} (package.json's version)`);
  process.exit(1);
}

const result = await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/snf-image.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  sourcemap: false,
  legalComments: 'none',
  // Source-tree asset paths are never used inside the executable (assets come from SEA).
  define: { 'import.meta.dirname': '"/nonexistent"' },
  logLevel: 'warning',
  metafile: true,
});
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
console.log(`bundled dist/snf-image.cjs (${(bytes / 1024).toFixed(0)} KiB)`);
