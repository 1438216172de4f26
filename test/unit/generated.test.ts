/**
 * The files generated from the tables (the image properties schema, the README's task and
 * property tables) are what the tables say now.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generatedFiles } from '../../scripts/generated-files.ts';

const root = join(import.meta.dirname, '..', '..');

describe('generated files', () => {
  for (const file of generatedFiles()) {
    it(`${file.path} is up to date`, () => {
      const current = readFileSync(join(root, file.path), 'utf8');
      assert.ok(current === file.content, `${file.path} is stale: run npm run generate`);
    });
  }
});
