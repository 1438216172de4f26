/**
 * The bundles inside the single executable and how they are wrapped: shared by the build
 * (scripts/bundle.ts, scripts/build-sea.ts, which makes each code cache) and the launcher
 * (src/sea/launcher.ts), so the cache is made for exactly the text the launcher compiles.
 */
export type BundleName = 'cli' | 'helper';

export interface BundleSpec {
  /** Entry point in the source tree. */
  entry: string;
  /** SEA asset (and dist/ file) holding the bundle. */
  source: string;
  /** SEA asset holding its V8 code cache. */
  cache: string;
  /** File name in stack traces. */
  filename: string;
  /** Arguments of the run the code cache is taken after (scripts/make-code-cache.ts). */
  warmArgs: readonly string[];
}

export const BUNDLES: Record<BundleName, BundleSpec> = {
  cli: {
    entry: 'src/cli/main.ts',
    source: 'dist/snf-image.cjs',
    cache: 'dist/snf-image.cache',
    filename: 'snf-image.cjs',
    warmArgs: ['--version'],
  },
  helper: {
    entry: 'helper/entry.ts',
    source: 'dist/helper.cjs',
    cache: 'dist/helper.cache',
    filename: 'snf-image-helper.cjs',
    warmArgs: ['helper'],
  },
};

/** A CommonJS bundle as one function expression, as Node wraps a module. */
export function bundleWrapper(source: string): string {
  return `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
}
