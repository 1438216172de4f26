/**
 * Real Ganeti 3.0 drives the provider as an administrator installs it: a one-node cluster in
 * a network namespace (test/ganeti/sandbox), our .deb installed with apt, the helper VM in
 * the package's default HELPER_DIR (see provider-package.ts), a real Debian test image in
 * the default IMAGE_DIR, and the real gnt-os / gnt-instance / gnt-backup commands.
 *
 * Deployed disks are checked by booting them with the boot checker (QEMU, -snapshot) under
 * TCG, not by starting the instances through Ganeti's kvm hypervisor: /dev/kvm on this kind
 * of machine only runs patched guest kernels, a stock Debian kernel hangs under it. Facts
 * that need no login (hostname after a rename, host keys, password hashes) are read from
 * the file disks offline with debugfs, which saves a boot each.
 *
 * Needs root, Debian's ganeti package (installed by the sandbox setup), QEMU and the tools
 * of the helper build; skipped with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { checkDeployedDisk, type CheckResult, type ExpectedState } from '../support/boot-checker.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { guestHostKeyFingerprints, guestPasswordMatches, readGuestFile } from '../support/offline-guest.ts';
import { acquirePackageLock } from '../support/package-lock.ts';
import { SecretWatch, type SecretWatchReport } from '../support/secret-watch.ts';
import { ensureTestImages, type TestImage } from '../support/test-images.ts';
import { installBlockedReason, PACKAGED_OS_DIR, ProviderInstallation } from './provider-package.ts';

const SANDBOX = resolve('test/ganeti/sandbox');
const NODE = 'node1.gnt.test';
const IMAGE_NAME = 'snf-image-ganeti-test-debian-mbr.img';
const DISK_SIZE = '2G';
const GiB = 1024 ** 3;
/** The root filesystem grown into the 2 GiB disk (the image's is 1.5 GiB). */
const MIN_ROOT_BYTES = 1.75 * GiB;
const ROOT_PARTITION = 1;
const SECRET = 'Ganeti-Secret-9f2c';
const SECRET2 = 'Ganeti-Reinstall-4e1a';
const IMAGE_PARAMS = `img_id=${IMAGE_NAME},img_format=diskdump`;

function skipReason(): string | false {
  const helper = helperSkipReason();
  if (helper) return helper;
  if (process.env.SNF_SKIP_GANETI) return 'SNF_SKIP_GANETI is set';
  for (const tool of ['debugfs', 'sfdisk', 'ssh-keygen', 'python3', 'apt-get']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  const installed = spawnSync('dpkg', ['-s', 'ganeti'], { stdio: 'ignore' }).status === 0;
  if (!installed) {
    const policy = spawnSync('apt-cache', ['policy', 'ganeti'], { encoding: 'utf8' }).stdout ?? '';
    if (!/Candidate: (?!\(none\))/.test(policy))
      return "Debian's ganeti package is not installable here (apt-cache policy ganeti has no candidate)";
  }
  return false;
}

function gnt(args: string[], expectOk = true): { code: number; out: string } {
  const started = Date.now();
  const r = spawnSync(join(SANDBOX, 'run-in.sh'), args, { encoding: 'utf8', timeout: 900_000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  console.log(`# ${args.slice(0, 2).join(' ')}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (expectOk) assert.equal(r.status, 0, `${args.join(' ')}\n${out}`);
  return { code: r.status ?? -1, out };
}

/** gnt() while every process on the machine is watched for `secret` (see SecretWatch). */
async function gntWatched(args: string[], secret: string): Promise<SecretWatchReport> {
  const started = Date.now();
  const watch = new SecretWatch(secret, '/usr/bin/snf-image');
  const child = spawn(join(SANDBOX, 'run-in.sh'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  watch.ignoredRoot = child.pid;
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((done) => child.on('close', done));
  const report = watch.stop();
  console.log(
    `# ${args.slice(0, 2).join(' ')}: ${((Date.now() - started) / 1000).toFixed(1)} s, ${report.scans} scans of /proc`,
  );
  assert.equal(code, 0, `${args.join(' ')}\n${out}`);
  return report;
}

function addArgs(instance: string, params: string, extra: string[] = []): string[] {
  return [
    'gnt-instance',
    'add',
    '-n',
    NODE,
    '-o',
    'snf-image+default',
    '-t',
    'file',
    '--disk',
    `0:size=${DISK_SIZE}`,
    '-O',
    params,
    ...extra,
    '--no-start',
    '--no-ip-check',
    '--no-name-check',
    instance,
  ];
}

function diskOf(instance: string): string {
  const dir = `/srv/ganeti/file-storage/${instance}`;
  const disk = readdirSync(dir).find((f) => f.endsWith('.disk0'));
  assert.ok(disk, `no disk0 under ${dir}`);
  return join(dir, disk);
}

function hostname(instance: string): string {
  return readGuestFile(diskOf(instance), ROOT_PARTITION, '/etc/hostname').trim();
}

function failed(checks: CheckResult[]): string[] {
  return checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
}

const skip = skipReason();

describe('real Ganeti 3.0 with the snf-image Debian package', { skip, timeout: 3_600_000 }, () => {
  let release: (() => void) | undefined;
  let blocked: string | false = false;
  let sandboxUp = false;
  let helperDir = '';
  let image: TestImage;
  const provider = new ProviderInstallation();
  /** What the first deployment's guest looks like, for the export/import and reinstall checks. */
  const inst1: { hostKeys: string[]; machineId: string } = { hostKeys: [], machineId: '' };

  const guard = (t: TestContext): boolean => {
    if (blocked) t.skip(blocked);
    return blocked !== false;
  };

  before(async () => {
    // The Debian package test installs and purges the provider: never at the same time.
    release = await acquirePackageLock();
    blocked = installBlockedReason();
    if (blocked) return;
    helperDir = ensureHelper();
    const images = ensureTestImages();
    image = images.images['debian-mbr'];
    sandboxUp = true;
    execFileSync(join(SANDBOX, 'setup.sh'), { stdio: 'inherit', timeout: 900_000 });
    const install = provider.installPackage();
    // Right after the install the package says what is missing: only the helper VM.
    if (install) assert.match(install, /run snf-image-update-helper to build the helper VM/);
    provider.placeHelper(helperDir);
    provider.placeImage(join(images.dir, image.files.raw), IMAGE_NAME);
    for (const line of provider.log) console.log(`# ${line}`);
  });

  after(() => {
    try {
      if (sandboxUp) execFileSync(join(SANDBOX, 'teardown.sh'), { stdio: 'inherit', timeout: 900_000 });
    } finally {
      try {
        provider.undo();
      } finally {
        release?.();
      }
    }
  });

  it('the installed package plus the helper VM is the whole setup: update-helper --check is happy', (t) => {
    if (guard(t)) return;
    assert.match(execFileSync('snf-image-update-helper', ['--check'], { encoding: 'utf8' }), /^up to date/m);
  });

  it('gnt-os diagnose finds the packaged OS valid with variant default and all parameters; nothing of Ganeti listens outside the namespace', (t) => {
    if (guard(t)) return;
    const { out } = gnt(['gnt-os', 'diagnose']);
    assert.match(out, /OS: snf-image \[global status: valid\]/);
    assert.match(out, /Variants: \[default\]/);
    assert.ok(out.includes(`(path: ${PACKAGED_OS_DIR})`), out);
    assert.match(
      out,
      /\[parameters: img_id, img_format, img_passwd, img_passwd_hash, img_properties, inst_properties, img_personality, auth_keys, config_url, os_product_key, os_answer_file, cloud_userdata\]/,
    );
    const listeners = execFileSync('ss', ['-Hltunp'], { encoding: 'utf8' });
    assert.doesNotMatch(listeners, /ganeti/, `Ganeti listens in the host's network namespace:\n${listeners}`);
  });

  it('gnt-os info lists the twelve parameters with descriptions', (t) => {
    if (guard(t)) return;
    const { out } = gnt(['gnt-os', 'info', 'snf-image']);
    const params = out
      .split('\n')
      .filter((l) => /^\s+- [a-z_]+: \S/.test(l) && /img_|auth_keys|config_url|os_|cloud_/.test(l));
    assert.equal(params.length, 12, out);
  });

  it('gnt-instance add with a bad img_format or a missing local image is refused by verify, naming the parameter', (t) => {
    if (guard(t)) return;
    const format = gnt(addArgs('inst9.gnt.test', `img_id=${IMAGE_NAME},img_format=bogus`), false);
    assert.notEqual(format.code, 0);
    assert.match(format.out, /OS Parameters validation failed .*img_format: 'bogus' is not a supported format/);
    const missing = gnt(addArgs('inst9.gnt.test', 'img_id=no-such-image.img,img_format=diskdump'), false);
    assert.notEqual(missing.code, 0);
    assert.match(
      missing.out,
      /OS Parameters validation failed .*img_id: local image 'no-such-image\.img' not found in IMAGE_DIR \/var\/lib\/snf-image/,
    );
  });

  it('gnt-instance add deploys the Debian image, the secret in no process but the OS script; the booted disk has the new password, the hostname, a grown root and new host keys', async (t) => {
    if (guard(t)) return;
    const watched = await gntWatched(
      addArgs('inst1.gnt.test', IMAGE_PARAMS, ['--os-parameters-secret', `img_passwd=${SECRET}`]),
      SECRET,
    );
    // The watch saw the secret where Ganeti puts it (the OS scripts' environment), so it
    // would have seen it anywhere else.
    assert.ok(watched.allowedHolders >= 1, `the watch never saw the create or verify process (${watched.scans} scans)`);
    assert.deepEqual(watched.leaks, [], 'no other process has the secret in its command line or environment');
    const disk = diskOf('inst1.gnt.test');
    inst1.hostKeys = guestHostKeyFingerprints(disk, ROOT_PARTITION);
    inst1.machineId = readGuestFile(disk, ROOT_PARTITION, '/etc/machine-id').trim();
    const expected: ExpectedState = {
      oldPassword: image.template_password,
      password: SECRET,
      hostname: 'inst1.gnt.test',
      minRootBytes: MIN_ROOT_BYTES,
      oldHostKeyFingerprints: image.ssh_host_keys.map((k) => k.fingerprint),
    };
    const { checks, bootSeconds } = await checkDeployedDisk({ disk, probeKernel: join(helperDir, 'kernel') }, expected);
    console.log(`# inst1: guest booted to a login prompt in ${bootSeconds.toFixed(1)} s`);
    for (const c of checks) console.log(`# inst1: ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
    assert.deepEqual(failed(checks), []);
    assert.equal(checks.length, 5, 'every check ran');
  });

  it('a failing create shows a one-line reason in the job output', (t) => {
    if (guard(t)) return;
    const r = gnt(addArgs('inst8.gnt.test', 'img_id=http://127.0.0.1:1/missing.img,img_format=diskdump'), false);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /OS create script failed .*last lines in the log file:/);
    const reason = r.out.split('\n').filter((l) => /\bERROR\b/.test(l));
    assert.equal(reason.length, 1, `one ERROR line:\n${r.out}`);
    assert.match(reason[0] as string, /ERROR img_id: cannot fetch http:\/\/127\.0\.0\.1:1\/missing\.img/);
    gnt(['gnt-instance', 'remove', '-f', 'inst8.gnt.test']);
  });

  it('gnt-backup export writes the disk byte for byte; import gives the same guest under the new name', (t) => {
    if (guard(t)) return;
    gnt(['gnt-backup', 'export', '-n', NODE, 'inst1.gnt.test']);
    const exportDir = '/var/lib/ganeti/export/inst1.gnt.test';
    const dumps = readdirSync(exportDir).filter((f) => f !== 'config.ini');
    assert.equal(dumps.length, 1, `one disk dump in ${exportDir}: ${dumps.join(', ')}`);
    execFileSync('cmp', [diskOf('inst1.gnt.test'), join(exportDir, dumps[0] as string)]);
    gnt([
      'gnt-backup',
      'import',
      '-n',
      NODE,
      '--src-node',
      NODE,
      '--src-dir',
      exportDir,
      '-t',
      'file',
      '--disk',
      `0:size=${DISK_SIZE}`,
      '--net',
      '0:mac=generate',
      '--no-ip-check',
      '--no-name-check',
      'inst2.gnt.test',
    ]);
    // Ganeti runs the rename script after an import (inst1 -> inst2): only the hostname changes.
    const disk = diskOf('inst2.gnt.test');
    assert.equal(hostname('inst2.gnt.test'), 'inst2.gnt.test');
    assert.deepEqual(guestHostKeyFingerprints(disk, ROOT_PARTITION), inst1.hostKeys, 'the same host keys as inst1');
    assert.equal(
      readGuestFile(disk, ROOT_PARTITION, '/etc/machine-id').trim(),
      inst1.machineId,
      'the same machine id as inst1',
    );
    assert.ok(guestPasswordMatches(disk, ROOT_PARTITION, 'root', SECRET), "inst1's password");
  });

  it('gnt-instance rename changes the guest hostname; the imported, renamed instance boots with the password of the original', async (t) => {
    if (guard(t)) return;
    const r = gnt(['gnt-instance', 'rename', 'inst2.gnt.test', 'inst3.gnt.test']);
    assert.match(r.out, /renamed to 'inst3\.gnt\.test'/);
    assert.doesNotMatch(r.out, /rename script|WARNING/i, r.out);
    const { checks, bootSeconds } = await checkDeployedDisk(
      { disk: diskOf('inst3.gnt.test'), probeKernel: join(helperDir, 'kernel') },
      { password: SECRET, hostname: 'inst3.gnt.test', minRootBytes: MIN_ROOT_BYTES },
    );
    console.log(`# inst3: guest booted to a login prompt in ${bootSeconds.toFixed(1)} s`);
    for (const c of checks) console.log(`# inst3: ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
    assert.deepEqual(failed(checks), []);
    assert.equal(checks.length, 3, 'every check ran');
  });

  it('reinstall: the Ganeti 3.0.2 quirk of dropped parameters gets a clear message; reinstall with other parameters redeploys', (t) => {
    if (guard(t)) return;
    // The first reinstall gets the stored public parameters (not the secret password), then
    // Ganeti 3.0.2 clears them.
    gnt(['gnt-instance', 'reinstall', '-f', 'inst1.gnt.test']);
    const disk = diskOf('inst1.gnt.test');
    assert.ok(
      guestPasswordMatches(disk, ROOT_PARTITION, 'root', image.template_password),
      'no password given: the image password stays',
    );
    const second = gnt(['gnt-instance', 'reinstall', '-f', 'inst1.gnt.test'], false);
    assert.notEqual(second.code, 0);
    assert.match(second.out, /Ganeti 3\.0\.2 forgets the stored OS parameters after a reinstall/);
    gnt([
      'gnt-instance',
      'reinstall',
      '-f',
      '-O',
      IMAGE_PARAMS,
      '--os-parameters-secret',
      `img_passwd=${SECRET2}`,
      'inst1.gnt.test',
    ]);
    assert.ok(guestPasswordMatches(disk, ROOT_PARTITION, 'root', SECRET2), 'the new password');
    assert.ok(!guestPasswordMatches(disk, ROOT_PARTITION, 'root', SECRET), 'not the first password');
    assert.equal(hostname('inst1.gnt.test'), 'inst1.gnt.test');
    const keys = guestHostKeyFingerprints(disk, ROOT_PARTITION);
    assert.deepEqual(
      keys.filter((k) => inst1.hostKeys.includes(k)),
      [],
      'new host keys',
    );
  });

  it('the secret passwords appear in no file under /var/log/ganeti or /var/lib/ganeti and in no job', (t) => {
    if (guard(t)) return;
    for (const secret of [SECRET, SECRET2]) {
      const grep = spawnSync('grep', ['-rlF', '--', secret, '/var/log/ganeti', '/var/lib/ganeti'], {
        encoding: 'utf8',
      });
      assert.equal(grep.stdout.trim(), '', `secret found in: ${grep.stdout}`);
    }
    const ids = gnt(['gnt-job', 'list', '--no-headers', '-o', 'id'])
      .out.split('\n')
      .map((l) => l.trim())
      .filter((l) => /^\d+$/.test(l));
    assert.ok(ids.length > 5, `jobs: ${ids.join(' ')}`);
    const jobs = gnt(['gnt-job', 'info', ...ids]).out;
    assert.match(jobs, /OP_INSTANCE_CREATE/);
    for (const secret of [SECRET, SECRET2]) assert.ok(!jobs.includes(secret), 'a secret in gnt-job info');
  });
});
