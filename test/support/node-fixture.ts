/**
 * A throw-away "Ganeti node" for tests: its own snf-image.conf, variants directory and
 * image directory under a temporary directory.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NodeFixture {
  root: string;
  configFile: string;
  imageDir: string;
  variantsDir: string;
}

export function makeNode(extraConfig = ''): NodeFixture {
  const root = mkdtempSync(join(tmpdir(), 'snf-node-'));
  const imageDir = join(root, 'images');
  const variantsDir = join(root, 'variants');
  mkdirSync(imageDir);
  mkdirSync(variantsDir);
  writeFileSync(join(variantsDir, 'default.conf'), '');
  const configFile = join(root, 'snf-image.conf');
  writeFileSync(
    configFile,
    `VARIANTS_DIR=${variantsDir}\nIMAGE_DIR=${imageDir}\nHELPER_DIR=${join(root, 'helper')}\n${extraConfig}`,
  );
  return { root, configFile, imageDir, variantsDir };
}
