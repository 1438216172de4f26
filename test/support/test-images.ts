/**
 * The Debian test guest images (scripts/test-images/build.sh): built once from Debian
 * packages and cached outside the repository, keyed by the hash of the scripts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runLines } from './run-lines.ts';

export interface TestImage {
  partition_table: 'msdos' | 'gpt';
  root_partition: number;
  size: number;
  template_password: string;
  hostname: string;
  ssh_host_keys: Array<{ type: string; fingerprint: string }>;
  files: { raw: string; zst: string; qcow2: string };
}

export interface TestImages {
  dir: string;
  images: Record<'debian-mbr' | 'debian-gpt', TestImage>;
}

let cached: TestImages | undefined;

const BUILD = 'scripts/test-images/build.sh';

/**
 * The cache directory an image build script names (its last output line naming a directory
 * with a manifest.json: stdout, or stderr when it re-ran itself in its own mount namespace).
 */
function cacheDirIn(script: string, output: string): string {
  const lines = output.split('\n').map((l) => l.trim());
  const dir = [...lines].reverse().find((l) => l.startsWith('/') && existsSync(join(l, 'manifest.json')));
  if (!dir) throw new Error(`${script} did not name its cache directory`);
  return dir;
}

/** Runs an image build script (a cache hit returns at once); its cache directory. */
function runImageBuild(script: string): string {
  const r = spawnSync('bash', [script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 2_400_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`${script} failed (exit ${r.status ?? r.signal})`);
  return cacheDirIn(script, `${r.stdout.toString()}\n${r.stderr.toString()}`);
}

/** The test images of a cache directory, remembered for the rest of the process. */
function readImages(dir: string): TestImages {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { images: TestImages['images'] };
  cached = { dir, images: manifest.images };
  return cached;
}

export function ensureTestImages(): TestImages {
  if (cached) return cached;
  const started = Date.now();
  const images = readImages(runImageBuild(BUILD));
  console.log(`# test images ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${images.dir}`);
  return images;
}

/**
 * ensureTestImages without blocking the event loop (the demo builds the helper and the
 * test images at the same time); the build's progress goes to `output` line by line.
 */
export async function ensureTestImagesAsync(output: (line: string) => void): Promise<TestImages> {
  if (cached) return cached;
  // Both streams: the script names its cache directory on stderr when it ran in its own
  // mount namespace (it re-executes itself after pointing its stdout at stderr).
  const lines: string[] = [];
  const status = await runLines('bash', [BUILD], undefined, (line) => {
    lines.push(line);
    output(line);
  });
  if (status !== 0) throw new Error(`${BUILD} failed (${status})`);
  return readImages(cacheDirIn(BUILD, lines.join('\n')));
}

export interface CloudTestImage {
  dir: string;
  /** cloud-init's Debian package version in the image. */
  cloudInit: string;
  image: Omit<TestImage, 'files'> & { files: { raw: string } };
}

/** The cloud-style Debian 13 image (scripts/cloud-test-image/build.sh): cloud-init, netplan. */
export function ensureCloudTestImage(): CloudTestImage {
  const started = Date.now();
  const dir = runImageBuild('scripts/cloud-test-image/build.sh');
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
    cloud_init: string;
    images: { 'debian13-cloud': CloudTestImage['image'] };
  };
  console.log(`# cloud test image ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${dir}`);
  return { dir, cloudInit: manifest.cloud_init, image: manifest.images['debian13-cloud'] };
}

/**
 * A compressed form the image build does not make (it makes raw, .zst and .qcow2 only):
 * made once beside the cached image, from the raw image, and kept. Used by the image bench.
 */
export function ensureImageForm(dir: string, image: string, form: 'xz' | 'gz'): string {
  const target = join(dir, `${image}.${form}`);
  if (existsSync(target)) return target;
  const raw = join(dir, image);
  const tool = form === 'xz' ? ['xz', '-6', '-T0', '-c', raw] : ['gzip', '-6', '-n', '-c', raw];
  const partial = `${target}.part-${process.pid}`;
  const started = Date.now();
  const r = spawnSync('sh', ['-c', '"$@" > "$0"', partial, ...tool], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    rmSync(partial, { force: true });
    throw new Error(`${tool[0]} of ${raw} failed (exit ${r.status ?? r.signal})`);
  }
  renameSync(partial, target);
  console.log(`# ${image}.${form} made in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return target;
}
