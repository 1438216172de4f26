/**
 * The built binary run exactly as Ganeti runs the OS scripts (env -i, links named after the
 * scripts): verify, install-os, rename, export/import round trips on files and loop devices.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { binaryMissingReason, BINARY, notRootReason, runScript } from '../support/binary.ts';
import { makeNode } from '../support/node-fixture.ts';
import { CREATE_ENV, EXPORT_ENV, IMPORT_ENV, RENAME_ENV, VERIFY_ENV } from '../fixtures/ganeti-env.ts';

const skipBinary = binaryMissingReason();
const node = makeNode();
const withConfig = (env: Record<string, string>) => ({ ...env, SNF_IMAGE_CONFIG: node.configFile });
writeFileSync(join(node.imageDir, 'foo'), 'not really an image');

function diskFile(name: string, size: number, random = false): string {
  const path = join(node.root, name);
  writeFileSync(path, random ? randomBytes(size) : Buffer.alloc(0));
  if (!random) execFileSync('truncate', ['-s', String(size), path]);
  return path;
}

describe('verify (built binary, Ganeti environment)', { skip: skipBinary }, () => {
  it('exits 0 and prints nothing for good parameters', async () => {
    const r = await runScript('verify', { env: withConfig(VERIFY_ENV), args: ['parameters'] });
    assert.equal(r.stdout.toString(), '');
    assert.equal(r.code, 0, r.stderr);
  });

  it('prints one line per problem on stdout and exits 1', async () => {
    const r = await runScript('verify', {
      env: withConfig({ ...VERIFY_ENV, OSP_IMG_FORMAT: 'bogus', OSP_IMG_ID: 'local://../x' }),
      args: ['parameters'],
    });
    assert.equal(r.code, 1);
    const lines = r.stdout.toString().trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? '', /^img_id: local image path escapes IMAGE_DIR/);
    assert.match(lines[1] ?? '', /^img_format: 'bogus' is not a supported format/);
  });

  it('says what happened when Ganeti 3.0.2 dropped the parameters on reinstall', async () => {
    const { OSP_IMG_ID: _a, OSP_IMG_FORMAT: _b, OSP_IMG_PASSWD: _c, ...bare } = VERIFY_ENV;
    const r = await runScript('verify', { env: withConfig(bare), args: ['parameters'] });
    assert.equal(r.code, 1);
    assert.match(r.stdout.toString(), /Ganeti 3\.0\.2 forgets the stored OS parameters after a reinstall/);
  });

  it('prints usage for a wrong call', async () => {
    const r = await runScript('verify', { env: withConfig(VERIFY_ENV), args: [] });
    assert.equal(r.code, 1);
    assert.match(r.stdout.toString(), /^usage: verify parameters/);
  });
});

describe('install-os', { skip: skipBinary }, () => {
  it('writes a complete OS definition whose scripts link to the binary', async () => {
    const dir = join(node.root, 'os', 'snf-image');
    const variantsDir = join(node.root, 'etc-variants');
    const configFile = join(node.root, 'etc', 'snf-image.conf');
    const r = await runScript('snf-image', {
      env: { PATH: process.env.PATH ?? '', SNF_IMAGE_CONFIG: node.configFile },
      args: ['install-os', dir, '--variants-dir', variantsDir],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(dir, 'ganeti_api_version'), 'utf8'), '20\n');
    assert.equal(readFileSync(join(dir, 'variants.list'), 'utf8'), 'default\n');
    const params = readFileSync(join(dir, 'parameters.list'), 'utf8');
    assert.equal(params.split('\n').filter(Boolean).length, 12);
    assert.ok(!params.includes('\n\n'));
    for (const script of ['create', 'import', 'export', 'rename', 'verify']) {
      assert.ok(lstatSync(join(dir, script)).isSymbolicLink());
      assert.equal(readlinkSync(join(dir, script)), BINARY);
      assert.ok((statSync(join(dir, script)).mode & 0o100) !== 0, `${script} executable`);
    }
    assert.ok(existsSync(join(variantsDir, 'default.conf')));
    assert.ok(!existsSync(configFile));
    // The installed verify works from the OS directory, as Ganeti runs it.
    const viaLink = spawnSync(join(dir, 'verify'), ['parameters'], {
      env: withConfig({ ...VERIFY_ENV, OSP_IMG_FORMAT: 'nope' }),
      cwd: dir,
    });
    assert.equal(viaLink.status, 1);
    assert.match(viaLink.stdout.toString(), /^img_format: 'nope' is not a supported format/);
  });
});

describe('rename (built binary)', { skip: skipBinary }, () => {
  it('leaves the guest alone when customization is excluded, and exits 0', async () => {
    const r = await runScript('rename', {
      env: withConfig({ ...RENAME_ENV, OSP_IMG_PROPERTIES: '{"EXCLUDE_ALL_TASKS": "yes"}' }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /instance renamed from=inst1\.gnt\.test to=inst2\.gnt\.test/);
    assert.match(r.stderr, /customization is excluded for this instance/);
  });

  it('does not boot the helper when the hostname task would not run (EXCLUDE_MOUNTED_TASKS, CLOUD_INIT), and says why', async () => {
    // No helper VM is installed here: booting it would fail the script.
    for (const [properties, why] of [
      ['{"EXCLUDE_MOUNTED_TASKS": "yes"}', 'AssignHostname: excluded by EXCLUDE_MOUNTED_TASKS'],
      ['{"CLOUD_INIT": "yes"}', 'AssignHostname: not run on rename in cloud-init mode'],
    ] as const) {
      const r = await runScript('rename', { env: withConfig({ ...RENAME_ENV, OSP_IMG_PROPERTIES: properties }) });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stderr.includes(`the guest hostname is left as it is (no task would run (${why}))`), r.stderr);
    }
  });

  it('says how to install the helper VM when it is missing', async () => {
    const r = await runScript('rename', { env: withConfig(RENAME_ENV) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERROR the helper VM is not installed in HELPER_DIR .*: run snf-image-update-helper/);
  });
});

describe('create input validation (built binary)', { skip: skipBinary }, () => {
  it('refuses bad parameters with one line naming each, before touching the disk', async () => {
    const disk = diskFile('create-disk', 1 << 20);
    const r = await runScript('create', {
      env: withConfig({ ...CREATE_ENV, DISK_0_PATH: disk, OSP_IMG_FORMAT: 'bogus' }),
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERROR img_format: 'bogus' is not a supported format/);
    assert.equal(
      readFileSync(disk).every((b) => b === 0),
      true,
    );
  });

  it('does not start the helper when no task would run, and says why', async () => {
    // No helper VM is installed here: create would refuse to start without one.
    const disk = diskFile('create-nothing-to-do', 1 << 20);
    const r = await runScript('create', {
      env: withConfig({
        ...CREATE_ENV,
        DISK_0_PATH: disk,
        OSP_IMG_ID: 'null',
        OSP_IMG_PROPERTIES:
          '{"EXCLUDE_MOUNTED_TASKS": "yes", "EXCLUDE_TASK_FixPartitionTable": "yes", "EXCLUDE_FILESYSTEMRESIZE_TASKS": "yes"}',
      }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /the helper VM is not started: no task would run \(FixPartitionTable: excluded by EXCLUDE_TASK_/,
    );
  });

  it('names a bad environment variable', async () => {
    const r = await runScript('create', { env: withConfig({ ...CREATE_ENV, DISK_0_SIZE: 'huge' }) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERROR DISK_0_SIZE: must be a whole number/);
  });
});

async function exportImportRoundTrip(source: string, target: string): Promise<void> {
  const dump = join(node.root, `dump-${Date.now()}`);
  const exp = await runScript('export', {
    env: withConfig({ ...EXPORT_ENV, EXPORT_DISK_PATH: source, EXPORT_DEVICE: source }),
    stdoutFile: dump,
    withSizeFd: true,
  });
  assert.equal(exp.code, 0, exp.stderr);
  const size = statSync(dump).size;
  assert.equal(exp.sizeFdText, `${size}\n`);
  const imp = await runScript('import', {
    env: withConfig({ ...IMPORT_ENV, IMPORT_DISK_PATH: target, IMPORT_DEVICE: target }),
    stdinFile: dump,
  });
  assert.equal(imp.code, 0, imp.stderr);
  execFileSync('cmp', [source, target]);
}

describe('export / import (built binary)', { skip: skipBinary }, () => {
  it('round-trips a file disk byte for byte and reports the size on EXP_SIZE_FD', async () => {
    const source = diskFile('src.disk', 24 * 1024 * 1024 + 4096, true);
    const target = diskFile('dst.disk', 24 * 1024 * 1024 + 4096);
    await exportImportRoundTrip(source, target);
    assert.equal(statSync(target).size, statSync(source).size);
  });

  it('import refuses more data than the disk holds', async () => {
    const big = diskFile('big.dump', 3 * 1024 * 1024, true);
    const small = diskFile('small.disk', 2 * 1024 * 1024);
    const r = await runScript('import', {
      env: withConfig({ ...IMPORT_ENV, IMPORT_DISK_PATH: small, IMPORT_DEVICE: small }),
      stdinFile: big,
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /IMPORT_DISK_PATH: the input is larger than the disk \(2097152 bytes\)/);
    assert.equal(statSync(small).size, 2 * 1024 * 1024);
  });

  it('export refuses a path that is neither a block device nor a file', async () => {
    const r = await runScript('export', {
      env: withConfig({ ...EXPORT_ENV, EXPORT_DISK_PATH: node.root, EXPORT_DEVICE: node.root }),
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /EXPORT_DISK_PATH .*: is neither a block device nor a regular file/);
  });

  describe('on loop devices', { skip: notRootReason() }, () => {
    const loops: string[] = [];
    after(() => {
      for (const loop of loops) execFileSync('losetup', ['-d', loop]);
    });
    const attach = (file: string) => {
      const dev = execFileSync('losetup', ['-f', '--show', file]).toString().trim();
      loops.push(dev);
      return dev;
    };

    it('round-trips a block device byte for byte', async () => {
      const source = attach(diskFile('loop-src.disk', 32 * 1024 * 1024, true));
      const target = attach(diskFile('loop-dst.disk', 32 * 1024 * 1024));
      await exportImportRoundTrip(source, target);
    });
  });
});
