/**
 * `npm run generate`: writes the files the tables generate (scripts/generated-files.ts) and
 * says which changed. test/unit/generated.test.ts fails while one is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatedFiles } from './generated-files.ts';

process.chdir(join(import.meta.dirname, '..'));

for (const file of generatedFiles()) {
  let before = '';
  try {
    before = readFileSync(file.path, 'utf8');
  } catch {
    // a new file
  }
  if (before === file.content) continue;
  writeFileSync(file.path, file.content);
  console.log(`generated ${file.path}`);
}
