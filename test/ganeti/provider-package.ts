/**
 * The provider on the Ganeti node as an administrator sets it up: our .deb installed with
 * apt (dependencies from the archive when missing), the helper VM in the package's default
 * HELPER_DIR, a test image in the default IMAGE_DIR. Records what it changed and undoes
 * exactly that.
 *
 * The helper VM is the test cache's (ensureHelper(): built by `snf-image update-helper` for
 * dist/snf-image) copied into /var/lib/snf-image/helper, instead of running
 * snf-image-update-helper (minutes) or bind-mounting the cache: the package's purge runs
 * `rm -rf /var/lib/snf-image/helper`, which through a bind mount would empty the shared
 * cache, and snf-image writes its accelerator probe cache into HELPER_DIR. A copy is
 * ~160 MB and a second. The copy is valid because the package ships dist/snf-image
 * unchanged as /usr/bin/snf-image (checked after the install).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { privateVarCacheScript } from '../support/package-lock.ts';

export const PACKAGED_OS_DIR = '/usr/share/ganeti/os/snf-image';
export const DEFAULT_HELPER_DIR = '/var/lib/snf-image/helper';
export const DEFAULT_IMAGE_DIR = '/var/lib/snf-image';
/** What the package's purge deletes besides HELPER_DIR: not ours when they were there before. */
const PURGED_CACHES = ['/var/cache/snf-image', '/var/cache/snf-image-build'];

const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const DIST_DEB = resolve(`dist/snf-image_${VERSION}_amd64.deb`);
const BINARY = resolve('dist/snf-image');

/** Runs a command that must succeed; its stdout and stderr. */
function run(command: string, args: string[], timeout = 900_000): { stdout: string; out: string } {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  assert.equal(r.status, 0, `${command} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${out.slice(-4000)}`);
  return { stdout: r.stdout ?? '', out };
}

export function packageState(): string {
  const r = spawnSync('dpkg-query', ['-W', '-f=${db:Status-Status}', 'snf-image'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'not-installed';
}

/** Why the provider cannot be set up here without touching someone else's installation. */
export function installBlockedReason(): string | false {
  const state = packageState();
  if (state === 'installed') {
    if (!existsSync('/usr/bin/snf-image') || spawnSync('cmp', ['-s', '/usr/bin/snf-image', BINARY]).status !== 0) {
      return 'snf-image is already installed here with another executable than dist/snf-image; not replacing it';
    }
  } else if (state !== 'not-installed') {
    return `the snf-image package is in state ${state}; not touching it`;
  }
  for (const dir of [
    '/srv/ganeti/os/snf-image',
    '/usr/local/lib/ganeti/os/snf-image',
    '/usr/lib/ganeti/os/snf-image',
  ]) {
    if (existsSync(dir)) return `${dir} exists and would hide the packaged OS definition from Ganeti; not touching it`;
  }
  return false;
}

export class ProviderInstallation {
  #installedPackage = false;
  #placedHelper = false;
  #linkedImages: string[] = [];
  #cachesBefore = PURGED_CACHES.filter((dir) => existsSync(dir));
  #debDir: string | undefined;
  log: string[] = [];

  /** dist's .deb when it is newer than dist/snf-image, else one built from it (build-deb.sh --no-build --fast). */
  #deb(): string {
    if (existsSync(DIST_DEB) && statSync(DIST_DEB).mtimeMs >= statSync(BINARY).mtimeMs) return DIST_DEB;
    this.#debDir = mkdtempSync(join(tmpdir(), 'snf-ganeti-deb-'));
    const started = Date.now();
    const { stdout, out } = run('scripts/build-deb.sh', ['--no-build', '--fast', '--out', this.#debDir], 1_500_000);
    this.log.push(`built the .deb in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const deb = stdout.trim().split('\n').pop() ?? '';
    assert.ok(existsSync(deb), `build-deb.sh printed no .deb path:\n${out}`);
    return resolve(deb);
  }

  /** apt-get install ./snf-image_<version>_amd64.deb unless the same executable is installed already. */
  installPackage(): string {
    if (packageState() === 'installed') {
      this.log.push('snf-image is already installed with dist/snf-image: using it (it stays installed)');
      return '';
    }
    const deb = this.#deb();
    this.#installedPackage = true;
    const { out } = run('apt-get', ['install', '-y', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=600', deb]);
    assert.equal(packageState(), 'installed', out);
    assert.equal(
      spawnSync('cmp', ['-s', '/usr/bin/snf-image', BINARY]).status,
      0,
      '/usr/bin/snf-image from the .deb is not dist/snf-image, the executable the helper VM was built for',
    );
    return out;
  }

  /** The test helper VM into the package's HELPER_DIR, unless one is there already. */
  placeHelper(helperDir: string): void {
    if (existsSync(DEFAULT_HELPER_DIR)) {
      this.log.push(`${DEFAULT_HELPER_DIR} exists: using it`);
      return;
    }
    this.#placedHelper = true;
    execFileSync('cp', ['-a', helperDir, DEFAULT_HELPER_DIR]);
  }

  /** The image file as DEFAULT_IMAGE_DIR/name: a hard link (no copy) when on the same filesystem. */
  placeImage(file: string, name: string): string {
    const target = join(DEFAULT_IMAGE_DIR, name);
    assert.ok(!existsSync(target), `${target} exists already`);
    this.#linkedImages.push(target);
    try {
      linkSync(file, target);
    } catch {
      copyFileSync(file, target);
    }
    return target;
  }

  /** Undoes what was done, in reverse; every step is tried. */
  undo(): void {
    const errors: string[] = [];
    const step = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        errors.push(`${what}: ${(e as Error).message}`);
      }
    };
    for (const image of this.#linkedImages) step(`remove ${image}`, () => rmSync(image, { force: true }));
    if (this.#placedHelper)
      step(`remove ${DEFAULT_HELPER_DIR}`, () => rmSync(DEFAULT_HELPER_DIR, { recursive: true, force: true }));
    if (this.#installedPackage && packageState() !== 'not-installed')
      step('dpkg --purge snf-image', () => this.#purge());
    for (const dir of PURGED_CACHES) {
      if (!this.#cachesBefore.includes(dir)) step(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    }
    if (this.#debDir)
      step(`remove ${this.#debDir}`, () => rmSync(this.#debDir as string, { recursive: true, force: true }));
    if (errors.length > 0) throw new Error(`undoing the provider installation: ${errors.join('; ')}`);
  }

  /**
   * dpkg --purge, in a private mount namespace whose /var/cache is a throw-away tmpfs
   * (other directories of it bound back): the purge's `rm -rf` of the caches under
   * /var/cache must not delete the shared helper build cache of other tests. The caches
   * this test made are removed afterwards by undo().
   */
  #purge(): void {
    const script = `${privateVarCacheScript('snf-ganeti-test')}
${String.raw`exec dpkg --purge snf-image`}`;
    const real = mkdtempSync(join(tmpdir(), 'snf-ganeti-cache.'));
    try {
      run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script, 'bash', real]);
    } finally {
      rmdirSync(real); // its mounts lived only in the namespace, which ended with the process
    }
    assert.equal(packageState(), 'not-installed');
  }
}
