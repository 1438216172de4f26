/**
 * Files shipped inside the single executable (SEA assets): variant files, the helper
 * build script, ... When running from the source tree they are read from the repository.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getAsset, getRawAsset, isSea } from 'node:sea';

/** Repository root when running from source (src/util/ -> ../..). */
function sourceRoot(): string {
  return join(import.meta.dirname, '..', '..');
}

/** Asset names are repository-relative paths, e.g. 'variants/default.conf'. */
export function readAssetText(name: string): string {
  if (isSea()) return getAsset(name, 'utf8');
  return readFileSync(join(sourceRoot(), name), 'utf8');
}

/** The bytes of a (binary) asset, e.g. 'dist/directio.node'. Do not modify them: inside the
 * executable they are the embedded asset itself, not a copy. */
export function readAssetBytes(name: string): Uint8Array {
  if (isSea()) return new Uint8Array(getRawAsset(name));
  return readFileSync(join(sourceRoot(), name));
}

export function runningAsSea(): boolean {
  return isSea();
}

/** Every asset the build embeds; scripts/build-sea.ts reads this list. */
export const ASSET_NAMES = [
  'variants/default.conf',
  'dist/directio.node',
  'helper/build/build-helper.sh',
  'helper/build/initrd-init.sh',
] as const;
