/** The installed helper VM (HELPER_DIR): kernel (and kernel-pvh), initrd, root.img and its manifest. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.ts';
import type { HelperFiles } from './qemu-command.ts';

export interface HelperManifest {
  suite?: string;
  kernelVersion?: string;
  rootfsType?: string;
  buildTime?: string;
  initBinarySha256?: string;
  sha256?: Record<string, string>;
}

export function readHelperManifest(helperDir: string): HelperManifest {
  const file = join(helperDir, 'manifest.json');
  if (!existsSync(file))
    throw new UserError(`the helper VM is not installed in HELPER_DIR ${helperDir}: run snf-image-update-helper`);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as HelperManifest;
  } catch {
    throw new UserError(`${file} is not valid JSON: run snf-image-update-helper`);
  }
}

export function helperFiles(helperDir: string): HelperFiles {
  const manifest = readHelperManifest(helperDir);
  const files = {
    kernel: join(helperDir, 'kernel'),
    initrd: join(helperDir, 'initrd'),
    root: join(helperDir, 'root.img'),
  };
  for (const [what, path] of Object.entries(files))
    if (!existsSync(path))
      throw new UserError(`the helper VM in ${helperDir} has no ${what}: run snf-image-update-helper`);
  const pvhKernel = join(helperDir, 'kernel-pvh');
  return { ...files, ...(existsSync(pvhKernel) ? { pvhKernel } : {}), rootFsType: manifest.rootfsType ?? 'squashfs' };
}
