/**
 * The README's first command (npm ci && npm run demo): builds what is missing (the binary,
 * the helper VM, a sample Debian image), deploys the image onto a file-backed disk with a
 * generated password, a hostname and an injected file, showing the progress as a person
 * sees it, then boots the result and prints what the guest reports. Needs root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkDeployedDisk } from '../test/support/boot-checker.ts';
import { ensureHelper } from '../test/support/helper-image.ts';
import { ensureTestImages } from '../test/support/test-images.ts';

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function step(text: string): void {
  process.stdout.write(`\n\x1b[1m==> ${text}\x1b[0m\n`);
}

if (process.getuid?.() !== 0) {
  console.error('the demo needs root (it builds the helper VM and boots QEMU)');
  process.exit(1);
}
const started = Date.now();
if (!existsSync('dist/snf-image') || statSync('dist/snf-image').mtimeMs < Math.max(newest('src'), newest('helper'))) {
  step('building dist/snf-image');
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
}
step('helper VM (snf-image update-helper; cached after the first run)');
const helperDir = ensureHelper();
step('sample Debian 12 image built from Debian packages (cached after the first run)');
const images = ensureTestImages();

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

step(`deploying ${images.images['debian-mbr'].files.zst} onto a 4 GiB disk (${disk})`);
const deployStarted = Date.now();
const deploy = spawnSync(
  'dist/snf-image',
  [
    'deploy',
    '--disk',
    disk,
    '--img-id',
    images.images['debian-mbr'].files.zst,
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
if (deploy.status !== 0) {
  console.error(`deployment failed (exit ${deploy.status})`);
  process.exit(1);
}
console.log(`deployed and customized in ${((Date.now() - deployStarted) / 1000).toFixed(1)} s`);

step('booting the deployed disk (QEMU, read-only snapshot) and logging in on its serial console');
const { checks, bootSeconds } = await checkDeployedDisk(
  { disk, probeKernel: join(helperDir, 'kernel') },
  {
    oldPassword: images.images['debian-mbr'].template_password,
    password,
    hostname,
    minRootBytes: 3 * 1024 ** 3,
    oldHostKeyFingerprints: images.images['debian-mbr'].ssh_host_keys.map((k) => k.fingerprint),
    sshdRunning: true,
    files: { '/etc/motd': motd },
  },
);
console.log(`guest reached its login prompt in ${bootSeconds.toFixed(1)} s; what it reports:`);
for (const c of checks)
  console.log(`  ${c.ok ? '\x1b[32mok\x1b[0m  ' : '\x1b[31mFAIL\x1b[0m'} ${c.name.padEnd(24)} ${c.detail}`);
console.log(`\nthe new root password is in ${passwordFile} (disk: ${disk})`);
console.log(`demo finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(checks.every((c) => c.ok) ? 0 : 1);
