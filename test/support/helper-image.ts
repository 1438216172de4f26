/**
 * A helper VM for tests, built with `snf-image update-helper` from the built binary and
 * cached outside the repository, keyed by the hash of the binary and the build scripts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BINARY, binaryMissingReason } from './binary.ts';

export const TEST_CACHE = process.env.SNF_TEST_CACHE ?? '/var/cache/snf-image-test';

export function helperSkipReason(): string | false {
  const missing = binaryMissingReason();
  if (missing) return missing;
  if (process.getuid?.() !== 0) return 'needs root (helper build, loop devices)';
  for (const tool of ['qemu-system-x86_64', 'debootstrap', 'mksquashfs', 'mke2fs']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  return false;
}

function cacheKey(): string {
  const hash = createHash('sha256');
  hash.update(readFileSync(BINARY));
  for (const f of readdirSync('helper/build').sort()) hash.update(readFileSync(join('helper/build', f)));
  return hash.digest('hex').slice(0, 16);
}

const built = new Map<string, string>();

/** Each helper is ~150 MB: keep the few most recently used (several checkouts may test at once). */
function pruneOldHelpers(root: string, keep: string): void {
  const KEEP = 8;
  const others = readdirSync(root)
    .map((name) => join(root, name))
    .filter((path) => path !== keep)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  for (const old of others.slice(KEEP - 1)) rmSync(old, { recursive: true, force: true });
}

/**
 * HELPER_DIR of a helper built for the current binary (built once, then reused); with
 * `ufsWrite: false` one built with --no-ufs-write (Debian's read-only ufs module).
 */
export function ensureHelper(options: { ufsWrite?: boolean } = {}): string {
  const variant = options.ufsWrite === false ? '-no-ufs-write' : '';
  const done = built.get(variant);
  if (done) return done;
  const root = join(TEST_CACHE, 'helper');
  const dir = join(root, `${cacheKey()}${variant}`);
  if (!existsSync(join(dir, 'helper', 'manifest.json'))) {
    mkdirSync(dir, { recursive: true });
    pruneOldHelpers(root, dir);
    const conf = join(dir, 'build.conf');
    writeFileSync(conf, `HELPER_DIR=${join(dir, 'helper')}\n`);
    const started = Date.now();
    execFileSync(BINARY, ['update-helper', ...(variant ? ['--no-ufs-write'] : [])], {
      env: { PATH: process.env.PATH ?? '', SNF_IMAGE_CONFIG: conf },
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 1_200_000,
    });
    console.log(`# helper VM built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  const now = new Date();
  utimesSync(dir, now, now);
  const helper = join(dir, 'helper');
  built.set(variant, helper);
  return helper;
}
