/**
 * Writes the V8 code cache of one bundle, for the launcher (src/sea/launcher.ts):
 *   node --max-semi-space-size=2 scripts/make-code-cache.ts SOURCE CACHE FILENAME
 * Run by scripts/build-sea.ts with the executable's V8 flags: V8 accepts a cache only from
 * a V8 of the same version with the same flags.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Script } from 'node:vm';
import { bundleWrapper } from '../src/sea/bundles.ts';

const [source, cache, filename] = process.argv.slice(2);
if (!source || !cache || !filename) {
  console.error('usage: make-code-cache.ts SOURCE CACHE FILENAME');
  process.exit(2);
}
const script = new Script(bundleWrapper(readFileSync(source, 'utf8')), { filename });
writeFileSync(cache, script.createCachedData());
