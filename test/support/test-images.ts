/**
 * The Debian test guest images (scripts/test-images/build.sh): built once from Debian
 * packages and cached outside the repository, keyed by the hash of the scripts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestImage {
  partition_table: 'msdos' | 'gpt';
  root_partition: number;
  size: number;
  template_password: string;
  hostname: string;
  ssh_host_keys: Array<{ type: string; fingerprint: string }>;
  files: { raw: string; zst: string; xz: string; gz: string; qcow2: string };
}

export interface TestImages {
  dir: string;
  images: Record<'debian-mbr' | 'debian-gpt', TestImage>;
}

let cached: TestImages | undefined;

export function ensureTestImages(): TestImages {
  if (cached) return cached;
  const started = Date.now();
  const out = execFileSync('bash', ['scripts/test-images/build.sh'], { stdio: ['ignore', 'pipe', 'inherit'], timeout: 2_400_000 }).toString().trim().split('\n');
  const dir = out.at(-1) as string;
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { images: TestImages['images'] };
  console.log(`# test images ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${dir}`);
  cached = { dir, images: manifest.images };
  return cached;
}
