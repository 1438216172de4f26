/**
 * A helper VM for tests, built with `snf-image update-helper` from the built binary and
 * cached outside the repository, keyed by the hash of the binary and the build scripts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BINARY, binaryMissingReason } from './binary.ts';
import { runLines } from './run-lines.ts';

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

interface HelperTarget {
  variant: string;
  /** The cache entry: build.conf and the helper directory. */
  dir: string;
  helper: string;
}

function helperTarget(options: { ufsWrite?: boolean }): HelperTarget {
  const variant = options.ufsWrite === false ? '-no-ufs-write' : '';
  const dir = join(TEST_CACHE, 'helper', `${cacheKey()}${variant}`);
  return { variant, dir, helper: join(dir, 'helper') };
}

/** Prepares the cache entry and returns the build command (the binary's update-helper). */
function buildCommand(target: HelperTarget): { args: string[]; env: Record<string, string> } {
  mkdirSync(target.dir, { recursive: true });
  pruneOldHelpers(join(TEST_CACHE, 'helper'), target.dir);
  const conf = join(target.dir, 'build.conf');
  writeFileSync(conf, `HELPER_DIR=${target.helper}\n`);
  return {
    args: ['update-helper', ...(target.variant ? ['--no-ufs-write'] : [])],
    env: { PATH: process.env.PATH ?? '', SNF_IMAGE_CONFIG: conf },
  };
}

function markUsed(target: HelperTarget): string {
  const now = new Date();
  utimesSync(target.dir, now, now);
  built.set(target.variant, target.helper);
  return target.helper;
}

const isBuilt = (target: HelperTarget): boolean => existsSync(join(target.helper, 'manifest.json'));

/**
 * HELPER_DIR of a helper built for the current binary (built once, then reused); with
 * `ufsWrite: false` one built with --no-ufs-write (Debian's read-only ufs module).
 */
export function ensureHelper(options: { ufsWrite?: boolean } = {}): string {
  const target = helperTarget(options);
  const done = built.get(target.variant);
  if (done) return done;
  if (!isBuilt(target)) {
    const { args, env } = buildCommand(target);
    const started = Date.now();
    execFileSync(BINARY, args, { env, stdio: ['ignore', 'inherit', 'inherit'], timeout: 1_200_000 });
    console.log(`# helper VM built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  return markUsed(target);
}

/**
 * ensureHelper without blocking the event loop (the demo builds the helper and the test
 * images at the same time); the build's output goes to `output` line by line.
 */
export async function ensureHelperAsync(
  options: { ufsWrite?: boolean },
  output: (line: string) => void,
): Promise<{ helperDir: string; built: boolean }> {
  const target = helperTarget(options);
  const done = built.get(target.variant);
  if (done) return { helperDir: done, built: false };
  if (isBuilt(target)) return { helperDir: markUsed(target), built: false };
  const { args, env } = buildCommand(target);
  const status = await runLines(BINARY, args, env, output);
  if (status !== 0) throw new Error(`snf-image update-helper failed (${status})`);
  return { helperDir: markUsed(target), built: true };
}
