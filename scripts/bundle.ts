/**
 * Bundles the CLI (src/cli/main.ts), the helper's PID 1 (helper/entry.ts) and the
 * single executable's launcher (src/sea/launcher.ts) into CommonJS files, the inputs of
 * the single executable (src/sea/bundles.ts).
 */
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';
import { BUNDLES } from '../src/sea/bundles.ts';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
const versionSource = readFileSync('src/version.ts', 'utf8');
if (!versionSource.includes(`'${pkg.version}'`)) {
  console.error(`src/version.ts does not say ${pkg.version} (package.json's version)`);
  process.exit(1);
}

// The CLI (which also runs the helper when started from the source tree), the helper's
// PID 1 alone, and the launcher the single executable starts with (src/sea/launcher.ts).
const targets = [
  { entry: BUNDLES.cli.entry, outfile: BUNDLES.cli.source },
  { entry: BUNDLES.helper.entry, outfile: BUNDLES.helper.source },
  { entry: 'src/sea/launcher.ts', outfile: 'dist/launcher.cjs' },
];
for (const target of targets) {
  const result = await build({
    entryPoints: [target.entry],
    outfile: target.outfile,
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
  console.log(`bundled ${target.outfile} (${(bytes / 1024).toFixed(0)} KiB)`);
}
