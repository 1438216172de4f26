/**
 * Real Ganeti 3.0 drives the built provider: a one-node cluster in a network namespace
 * (test/ganeti/sandbox), the OS definition written by `snf-image install-os`, and the
 * real gnt-os / gnt-instance / gnt-backup commands. Needs root and Debian's ganeti package
 * (installed by the sandbox setup); skipped with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { binaryMissingReason } from '../support/binary.ts';
import { acquirePackageLock } from '../support/package-lock.ts';

const SANDBOX = resolve('test/ganeti/sandbox');
const OS_DIR = '/srv/ganeti/os/snf-image';
const BIN = '/usr/local/lib/snf-image-test/snf-image';
const IMAGE_DIR = '/var/lib/snf-image';
const IMAGE = join(IMAGE_DIR, 'snf-image-ganeti-test.img');
const SECRET = 'Ganeti-Secret-9f2c';
const created: string[] = [];

function skipReason(): string | false {
  const missing = binaryMissingReason();
  if (missing) return missing;
  if (process.getuid?.() !== 0) return 'needs root (network namespace, Ganeti daemons)';
  if (process.env.SNF_SKIP_GANETI) return 'SNF_SKIP_GANETI is set';
  const installed = spawnSync('dpkg', ['-s', 'ganeti'], { stdio: 'ignore' }).status === 0;
  if (!installed) {
    const policy = spawnSync('apt-cache', ['policy', 'ganeti'], { encoding: 'utf8' }).stdout ?? '';
    if (!/Candidate: (?!\(none\))/.test(policy)) return "Debian's ganeti package is not installable here (apt-cache policy ganeti has no candidate)";
  }
  return false;
}

function gnt(args: string[], expectOk = true): { code: number; out: string } {
  const r = spawnSync(join(SANDBOX, 'run-in.sh'), args, { encoding: 'utf8', timeout: 300_000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (expectOk) assert.equal(r.status, 0, `${args.join(' ')}\n${out}`);
  return { code: r.status ?? -1, out };
}

function remember(path: string): void {
  if (!existsSync(path)) created.push(path);
}

function diskOf(instance: string): string {
  const dir = `/srv/ganeti/file-storage/${instance}`;
  const disk = readdirSync(dir).find((f) => f.endsWith('.disk0'));
  assert.ok(disk, `no disk0 under ${dir}`);
  return join(dir, disk);
}

const skip = skipReason();

describe('real Ganeti 3.0 with the snf-image OS definition', { skip, timeout: 1_200_000 }, () => {
  let release: (() => void) | undefined;

  before(async () => {
    // The Debian package test installs and purges the provider: never at the same time.
    release = await acquirePackageLock();
    execFileSync(join(SANDBOX, 'setup.sh'), { stdio: 'inherit', timeout: 600_000 });
    for (const path of [OS_DIR, '/etc/ganeti/snf-image', '/etc/snf-image', IMAGE_DIR, '/usr/local/lib/snf-image-test']) remember(path);
    mkdirSync('/usr/local/lib/snf-image-test', { recursive: true });
    copyFileSync('dist/snf-image', BIN);
    execFileSync('chmod', ['755', BIN]);
    execFileSync(BIN, ['install-os', OS_DIR]);
    mkdirSync(IMAGE_DIR, { recursive: true });
    const img = Buffer.alloc(32 * 1024 * 1024);
    for (let at = 0; at < img.length; at += 4 * 1024 * 1024) img.fill(at / 4096 + 1, at, at + 512 * 1024);
    img[510] = 0x55;
    img[511] = 0xaa;
    writeFileSync(IMAGE, img);
  });

  after(() => {
    try {
      execFileSync(join(SANDBOX, 'teardown.sh'), { stdio: 'inherit', timeout: 600_000 });
    } finally {
      for (const path of created.reverse()) rmSync(path, { recursive: true, force: true });
      release?.();
    }
  });

  it('gnt-os diagnose says snf-image is valid with variant default and all parameters', () => {
    const { out } = gnt(['gnt-os', 'diagnose']);
    assert.match(out, /OS: snf-image \[global status: valid\]/);
    assert.match(out, /Variants: \[default\]/);
    assert.match(out, /\[parameters: img_id, img_format, img_passwd, img_passwd_hash, img_properties, inst_properties, img_personality, auth_keys, config_url, os_product_key, os_answer_file, cloud_userdata\]/);
  });

  it('gnt-os info lists the twelve parameters with descriptions', () => {
    const { out } = gnt(['gnt-os', 'info', 'snf-image']);
    const params = out.split('\n').filter((l) => /^\s+- [a-z_]+: \S/.test(l) && /img_|auth_keys|config_url|os_|cloud_/.test(l));
    assert.equal(params.length, 12, out);
  });

  it('gnt-instance add with a bad img_format is refused naming img_format', () => {
    const r = gnt(['gnt-instance', 'add', '-n', 'node1.gnt.test', '-o', 'snf-image+default', '-t', 'file', '--disk', '0:size=1G', '-O', 'img_id=snf-image-ganeti-test.img,img_format=bogus', '--no-start', '--no-ip-check', '--no-name-check', 'inst9.gnt.test'], false);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /OS Parameters validation failed .*img_format: 'bogus' is not a supported format/);
  });

  it('gnt-instance add writes the image; the secret reaches no log and no job', () => {
    gnt(['gnt-instance', 'add', '-n', 'node1.gnt.test', '-o', 'snf-image+default', '-t', 'file', '--disk', '0:size=1G', '-O', 'img_id=snf-image-ganeti-test.img,img_format=diskdump,img_properties={"EXCLUDE_ALL_TASKS":"yes"}', '--os-parameters-secret', `img_passwd=${SECRET}`, '--no-start', '--no-ip-check', '--no-name-check', 'inst1.gnt.test']);
    const disk = readFileSync(diskOf('inst1.gnt.test'));
    assert.ok(disk.subarray(0, 32 * 1024 * 1024).equals(readFileSync(IMAGE)), 'disk starts with the image');
    assert.ok(disk.subarray(32 * 1024 * 1024).every((b) => b === 0), 'rest of the disk is zero');
    const grep = spawnSync('grep', ['-rl', SECRET, '/var/log/ganeti', '/var/lib/ganeti'], { encoding: 'utf8' });
    assert.equal(grep.stdout.trim(), '', `secret found in: ${grep.stdout}`);
  });

  it('a failing create shows a one-line reason in the job output', () => {
    const r = gnt(['gnt-instance', 'add', '-n', 'node1.gnt.test', '-o', 'snf-image+default', '-t', 'file', '--disk', '0:size=1G', '-O', 'img_id=http://127.0.0.1:1/missing.img,img_format=diskdump,img_properties={"EXCLUDE_ALL_TASKS":"yes"}', '--no-start', '--no-ip-check', '--no-name-check', 'inst8.gnt.test'], false);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /OS create script failed .*last lines in the log file:[\s\S]*ERROR img_id: cannot fetch http:\/\/127\.0\.0\.1:1\/missing\.img/);
    gnt(['gnt-instance', 'remove', '-f', 'inst8.gnt.test']);
  });

  it('gnt-backup export + import reproduce the disk byte for byte, then rename runs', () => {
    gnt(['gnt-backup', 'export', '-n', 'node1.gnt.test', 'inst1.gnt.test']);
    gnt(['gnt-backup', 'import', '-n', 'node1.gnt.test', '--src-node', 'node1.gnt.test', '--src-dir', '/var/lib/ganeti/export/inst1.gnt.test', '-t', 'file', '--disk', '0:size=1G', '--net', '0:mac=generate', '--no-ip-check', '--no-name-check', 'inst2.gnt.test']);
    execFileSync('cmp', [diskOf('inst1.gnt.test'), diskOf('inst2.gnt.test')]);
    const renameLog = readdirSync('/var/log/ganeti/os').filter((f) => f.startsWith('rename-snf-image+default-inst1.gnt.test-inst2.gnt.test'));
    assert.ok(renameLog.length >= 1, 'rename script ran after the import');
  });

  it('reinstall: the Ganeti 3.0.2 quirk of dropped parameters gets a clear message', () => {
    gnt(['gnt-instance', 'reinstall', '-f', 'inst1.gnt.test']);
    const second = gnt(['gnt-instance', 'reinstall', '-f', 'inst1.gnt.test'], false);
    assert.notEqual(second.code, 0);
    assert.match(second.out, /Ganeti 3\.0\.2 forgets the stored OS parameters after a reinstall/);
    gnt(['gnt-instance', 'reinstall', '-f', '-O', 'img_id=snf-image-ganeti-test.img,img_format=diskdump,img_properties={"EXCLUDE_ALL_TASKS":"yes"}', 'inst1.gnt.test']);
  });
});
