/**
 * `snf-image update-helper` (also installed as snf-image-update-helper): builds the helper
 * VM from Debian packages into HELPER_DIR with the build scripts embedded in this binary,
 * putting this very binary into the helper's root image. Idempotent: a helper built for
 * this binary is left alone unless --force. --check only says whether it matches.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAssetText } from '../util/assets.ts';
import { UserError } from '../util/errors.ts';
import { readHelperManifest } from './helper-files.ts';

const HELPER_BUILD_ASSETS = ['helper/build/build-helper.sh', 'helper/build/initrd-init.sh'] as const;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export type HelperState =
  | { state: 'missing' }
  | { state: 'current'; buildTime: string }
  | { state: 'stale'; why: string };

export async function helperState(helperDir: string, binary: string): Promise<HelperState> {
  if (!existsSync(join(helperDir, 'manifest.json'))) return { state: 'missing' };
  const manifest = readHelperManifest(helperDir);
  for (const file of ['kernel', 'initrd', 'root.img'])
    if (!existsSync(join(helperDir, file))) return { state: 'stale', why: `${file} is missing` };
  const sha = await sha256File(binary);
  if (manifest.initBinarySha256 !== sha) return { state: 'stale', why: 'it was built for another snf-image binary' };
  return { state: 'current', buildTime: manifest.buildTime ?? 'unknown' };
}

export interface UpdateHelperOptions {
  helperDir: string;
  binary: string;
  force: boolean;
  mirror?: string | undefined;
  /** Build the write-enabled ufs module (default true). */
  ufsWrite?: boolean;
  /** Bootstrap again instead of using the cached packages. */
  refresh?: boolean;
  out: (line: string) => void;
}

export async function updateHelper(options: UpdateHelperOptions): Promise<void> {
  const { execa } = await import('execa');
  const state = await helperState(options.helperDir, options.binary);
  if (state.state === 'current' && !options.force) {
    options.out(`the helper VM in ${options.helperDir} is up to date (built ${state.buildTime})`);
    return;
  }
  options.out(
    state.state === 'missing'
      ? `building the helper VM into ${options.helperDir}`
      : state.state === 'stale'
        ? `rebuilding the helper VM (${state.why})`
        : 'rebuilding the helper VM (--force)',
  );
  const work = await mkdtemp(join(tmpdir(), 'snf-image-build-'));
  try {
    for (const asset of HELPER_BUILD_ASSETS) {
      const file = join(work, asset.split('/').pop() as string);
      await writeFile(file, readAssetText(asset));
      await chmod(file, 0o755);
    }
    const args = [
      join(work, 'build-helper.sh'),
      '--out',
      options.helperDir,
      '--init-binary',
      options.binary,
      ...(options.mirror ? ['--mirror', options.mirror] : []),
      ...(options.ufsWrite === false ? ['--no-ufs-write'] : []),
      ...(options.refresh ? ['--no-cache'] : []),
    ];
    try {
      await execa('bash', args, { stdio: 'inherit' });
    } catch (error) {
      throw new UserError(
        `building the helper VM failed (${(error as { exitCode?: number }).exitCode ?? 'error'}); see the messages above`,
      );
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const after = await helperState(options.helperDir, options.binary);
  if (after.state !== 'current')
    throw new UserError(`the helper VM built in ${options.helperDir} does not match this binary`);
  options.out(`the helper VM in ${options.helperDir} is ready`);
}
