/**
 * The README's first command (npm ci && npm run demo): installs the Debian packages that
 * are missing (scripts/setup.sh), builds what is missing (the binary; the helper VM and
 * one sample Debian image at the same time, in the caches the tests use), deploys the
 * image onto a file-backed disk with a generated password, a hostname and an injected
 * file, then boots the result and prints what the guest reports. Each phase is shown with
 * its time, and the total. Needs root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkDeployedDisk } from '../test/support/boot-checker.ts';
import { ensureHelperAsync } from '../test/support/helper-image.ts';
import { ensureTestImagesAsync } from '../test/support/test-images.ts';

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const seconds = (since: number): string => `${((Date.now() - since) / 1000).toFixed(1)} s`;
const phases: Array<[string, string]> = [];

function step(text: string): void {
  process.stdout.write(`\n\x1b[1m==> ${text}\x1b[0m\n`);
}

/** Runs one phase, prints and records its time. */
async function phase<T>(name: string, what: string, body: () => T | Promise<T>): Promise<T> {
  step(`${name}: ${what}`);
  const started = Date.now();
  const entry: [string, string] = [name, ''];
  phases.push(entry);
  const result = await body();
  entry[1] = seconds(started);
  console.log(`--- ${name}: ${seconds(started)}`);
  return result;
}

function fail(text: string): never {
  console.error(`\x1b[31mdemo failed: ${text}\x1b[0m`);
  process.exit(1);
}

if (process.getuid?.() !== 0)
  fail('the demo needs root (it installs Debian packages, builds the helper VM, boots QEMU)');
const started = Date.now();

await phase('setup', 'the Debian packages the tests and the demo need (scripts/setup.sh)', () => {
  if (spawnSync('bash', ['scripts/setup.sh'], { stdio: 'inherit' }).status !== 0) fail('scripts/setup.sh failed');
});

await phase('build', 'dist/snf-image (when src/ or helper/ changed)', () => {
  if (existsSync('dist/snf-image') && statSync('dist/snf-image').mtimeMs >= Math.max(newest('src'), newest('helper'))) {
    console.log('dist/snf-image is up to date');
    return;
  }
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
});

// The helper VM and the sample image do not depend on each other: build them at the same
// time (a cache hit returns at once). The demo's helper is built without the write-enabled
// BSD ufs module, which it does not need (the BSD tests use the same helper).
const { helperDir, images } = await phase('helper+images', 'helper VM and sample Debian 12 image, in parallel', () => {
  // Each timed from its start: computing the helper's cache key (hashing the binary) is
  // synchronous work of its own.
  const timed = async <T>(name: string, body: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const result = await body();
    phases.push([`  ${name}`, seconds(t)]);
    console.log(`--- ${name}: ${seconds(t)}`);
    return result;
  };
  return Promise.all([
    timed('helper', () => ensureHelperAsync({ ufsWrite: false }, (line) => console.log(`[helper] ${line}`))),
    timed('images', () => ensureTestImagesAsync((line) => console.log(`[images] ${line}`))),
  ]).then(([helper, images]) => ({ helperDir: helper.helperDir, images }));
});

const work = '/var/tmp/snf-image-demo';
mkdirSync(work, { recursive: true, mode: 0o700 });
const password = randomBytes(9).toString('base64url');
const hostname = 'demo.snf-image.test';
const motd = `Hello from snf-image: deployed ${new Date().toISOString()}\n`;
const passwordFile = join(work, 'password');
writeFileSync(passwordFile, password, { mode: 0o600 });
writeFileSync(join(work, 'snf-image.conf'), `HELPER_DIR=${helperDir}\nIMAGE_DIR=${images.dir}\nVARIANTS_DIR=${work}\n`);
const disk = join(work, 'disk0.img');
writeFileSync(disk, '');
execFileSync('truncate', ['-s', '4G', disk]);
const image = images.images['debian-mbr'];

await phase('deploy', `${image.files.zst} onto a 4 GiB disk (${disk})`, () => {
  const deploy = spawnSync(
    'dist/snf-image',
    [
      'deploy',
      '--disk',
      disk,
      '--img-id',
      image.files.zst,
      '--img-format',
      'diskdump',
      '--hostname',
      hostname,
      '--passwd-file',
      passwordFile,
      '--img-personality',
      JSON.stringify([{ path: '/etc/motd', contents: Buffer.from(motd).toString('base64'), mode: 0o644 }]),
    ],
    { stdio: 'inherit', env: { ...process.env, SNF_IMAGE_CONFIG: join(work, 'snf-image.conf') } },
  );
  if (deploy.status !== 0) fail(`deployment failed (exit ${deploy.status ?? deploy.signal})`);
});

const { checks, bootSeconds } = await phase(
  'boot check',
  'booting the deployed disk (QEMU, read-only snapshot), logging in on its serial console',
  () =>
    checkDeployedDisk(
      { disk, probeKernel: join(helperDir, 'kernel') },
      {
        oldPassword: image.template_password,
        password,
        hostname,
        minRootBytes: 3 * 1024 ** 3,
        oldHostKeyFingerprints: image.ssh_host_keys.map((k) => k.fingerprint),
        sshdRunning: true,
        files: { '/etc/motd': motd },
      },
    ),
);
console.log(`guest reached its login prompt in ${bootSeconds.toFixed(1)} s; what it reports:`);
for (const c of checks)
  console.log(`  ${c.ok ? '\x1b[32mok\x1b[0m  ' : '\x1b[31mFAIL\x1b[0m'} ${c.name.padEnd(24)} ${c.detail}`);
console.log(`\nthe new root password is in ${passwordFile} (disk: ${disk})`);
step('times');
for (const [name, time] of phases) console.log(`  ${name.padEnd(16)} ${time.padStart(9)}`);
console.log(`  ${'total'.padEnd(16)} ${seconds(started).padStart(9)}`);
const ok = checks.every((c) => c.ok);
console.log(ok ? '\x1b[32mdemo passed\x1b[0m' : '\x1b[31mdemo failed: see the checks above\x1b[0m');
process.exit(ok ? 0 : 1);
