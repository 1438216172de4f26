/**
 * `snf-image doctor`: every check fails and passes on a node made of temporary directories
 * and files (configuration path, OS search path, binary, /dev/kvm stand-in, free space all
 * given through DoctorEnvironment; nothing depends on this machine's disks).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CHECKS,
  type CheckStatus,
  type DoctorEnvironment,
  doctorExitCode,
  renderReport,
  runChecks,
} from '../../src/doctor/checks.ts';
import { installOsDefinition } from '../../src/ganeti/os-definition.ts';

const root = mkdtempSync(join(tmpdir(), 'snf-doctor-'));
let serial = 0;

/** A node: a configuration file with `conf` (plus a HELPER_DIR and IMAGE_DIR of its own) and an environment. */
function node(conf = '', env: Partial<DoctorEnvironment> = {}) {
  const dir = join(root, `n${serial++}`);
  mkdirSync(join(dir, 'images'), { recursive: true, mode: 0o755 });
  mkdirSync(join(dir, 'tmp'), { recursive: true, mode: 0o755 });
  mkdirSync(join(dir, 'variants'), { recursive: true });
  mkdirSync(join(dir, 'os'), { recursive: true });
  chmodSync(join(dir, 'images'), 0o755);
  chmodSync(join(dir, 'tmp'), 0o755);
  const binary = join(dir, 'snf-image');
  writeFileSync(binary, `binary ${dir}\n`, { mode: 0o755 });
  const configFile = join(dir, 'snf-image.conf');
  writeFileSync(
    configFile,
    `HELPER_DIR=${dir}/helper\nIMAGE_DIR=${dir}/images\nIMAGE_TMP_DIR=${dir}/tmp\nIMAGE_CACHE_DIR=${dir}/cache\nVARIANTS_DIR=${dir}/variants\n${conf}`,
  );
  const environment: DoctorEnvironment = {
    configFile,
    binary,
    osSearchPath: [join(dir, 'os'), join(dir, 'os2')],
    osName: 'snf-image',
    minFreeBytes: 1024,
    freeBytes: () => 1024 ** 3,
    owner: process.getuid?.() ?? 0,
    kvmDevice: join(dir, 'kvm'),
    httpsTimeoutMs: 5000,
    ...env,
  };
  return { dir, binary, configFile, env: environment };
}

async function check(id: string, env: DoctorEnvironment): Promise<{ status: CheckStatus; text: string }> {
  const [report] = await runChecks(env, [id]);
  assert.ok(report, id);
  return { status: report.status, text: `${report.detail} ${report.fix ?? ''}` };
}

function fakeQemu(dir: string, version = '8.2.2'): string {
  const qemu = join(dir, 'qemu');
  writeFileSync(qemu, `#!/bin/sh\necho "QEMU emulator version ${version} (Debian)"\n`, { mode: 0o755 });
  return qemu;
}

/** An installed helper VM built for `binary` (or another one). */
function installHelper(dir: string, binary: string | undefined): void {
  const helper = join(dir, 'helper');
  mkdirSync(helper, { recursive: true });
  for (const f of ['kernel', 'initrd', 'root.img']) writeFileSync(join(helper, f), f);
  const sha = createHash('sha256')
    .update(binary ? readFileSync(binary) : 'other')
    .digest('hex');
  writeFileSync(join(helper, 'manifest.json'), JSON.stringify({ initBinarySha256: sha, buildTime: 'today' }));
}

after(() => rmSync(root, { recursive: true, force: true }));

describe('snf-image doctor', () => {
  it('the table: every check has a unique id and a title', () => {
    const ids = CHECKS.map((c) => c.id);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(ids, [
      'config',
      'qemu',
      'kvm',
      'helper',
      'helper-user',
      'image-dir',
      'tmp-dir',
      'cache-dir',
      'os-definition',
      'https-trust',
    ]);
  });

  it('config: a bad value or a bad variant file fails; good files pass', async () => {
    assert.equal((await check('config', node().env)).status, 'ok');
    const bad = await check('config', node('HELPER_MEMORY=lots\n').env);
    assert.equal(bad.status, 'fail');
    assert.match(bad.text, /HELPER_MEMORY/);
    const n = node();
    writeFileSync(join(n.dir, 'variants', 'small.conf'), 'HELPER_ACCEL=fast\n');
    const variant = await check('config', n.env);
    assert.equal(variant.status, 'fail');
    assert.match(variant.text, /variant small: .*HELPER_ACCEL/);
    assert.equal((await check('config', node('', { configFile: join(root, 'missing.conf') }).env)).status, 'fail');
    // The other checks need the configuration: skipped, not failed twice.
    assert.equal((await check('qemu', node('HELPER_MEMORY=lots\n').env)).status, 'skip');
  });

  it('qemu: a missing QEMU fails with what to install; a QEMU that answers passes with its version', async () => {
    const missing = await check('qemu', node(`QEMU=${root}/no-qemu\n`).env);
    assert.equal(missing.status, 'fail');
    assert.match(missing.text, /qemu-system-x86/);
    const n = node();
    writeFileSync(n.configFile, `QEMU=${fakeQemu(n.dir)}\n`, { flag: 'a' });
    const found = await check('qemu', n.env);
    assert.equal(found.status, 'ok');
    assert.match(found.text, /version 8\.2\.2/);
  });

  it('kvm: HELPER_ACCEL=kvm without /dev/kvm fails; with it, or the cached probe saying KVM boots, passes', async () => {
    assert.equal((await check('kvm', node('HELPER_ACCEL=kvm\n').env)).status, 'fail');
    assert.equal((await check('kvm', node('HELPER_ACCEL=tcg\n').env)).status, 'ok');
    assert.equal((await check('kvm', node().env)).status, 'warn');
    const withKvm = node('HELPER_ACCEL=kvm\n');
    writeFileSync(withKvm.env.kvmDevice, '');
    assert.equal((await check('kvm', withKvm.env)).status, 'ok');
    // auto: the cached probe's answer (keyed by host kernel, QEMU version and helper kernel).
    for (const [accel, status] of [
      ['kvm', 'ok'],
      ['tcg', 'warn'],
    ] as const) {
      const n = node();
      writeFileSync(n.env.kvmDevice, '');
      writeFileSync(n.configFile, `QEMU=${fakeQemu(n.dir)}\n`, { flag: 'a' });
      installHelper(n.dir, n.binary);
      const kernelHash = createHash('sha256').update('kernel').digest('hex').slice(0, 16);
      writeFileSync(
        join(n.dir, 'helper', 'accel-probe.json'),
        JSON.stringify({ key: `${release()}|version 8.2.2|${kernelHash}`, accel }),
      );
      assert.equal((await check('kvm', n.env)).status, status, accel);
    }
  });

  it('helper: missing or built for another binary fails; built for this binary passes', async () => {
    const missing = await check('helper', node().env);
    assert.equal(missing.status, 'fail');
    assert.match(missing.text, /snf-image-update-helper/);
    const stale = node();
    installHelper(stale.dir, undefined);
    const staleResult = await check('helper', stale.env);
    assert.equal(staleResult.status, 'fail');
    assert.match(staleResult.text, /another snf-image binary/);
    const current = node();
    installHelper(current.dir, current.binary);
    assert.equal((await check('helper', current.env)).status, 'ok');
  });

  it('helper-user: an unknown HELPER_USER or a HELPER_UIDS range with accounts in it fails', async () => {
    assert.equal((await check('helper-user', node('HELPER_UIDS=\nHELPER_USER=no-such-user-x\n').env)).status, 'fail');
    assert.equal((await check('helper-user', node('HELPER_UIDS=\nHELPER_USER=nobody\n').env)).status, 'ok');
    const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    const taken = await check('helper-user', node(`HELPER_UIDS=${nobody - 10}-${nobody + 10}\n`).env);
    assert.equal(taken.status, 'fail');
    assert.match(taken.text, /nobody/);
    assert.equal((await check('helper-user', node('HELPER_UIDS=1879048192-1879113727\n').env)).status, 'ok');
  });

  for (const [id, key] of [
    ['image-dir', 'images'],
    ['tmp-dir', 'tmp'],
  ] as const) {
    it(`${id}: missing, writable by others, another owner or (tmp) full fails; a right one passes`, async () => {
      const n = node();
      assert.equal((await check(id, n.env)).status, 'ok');
      chmodSync(join(n.dir, key), 0o777);
      const open = await check(id, n.env);
      assert.equal(open.status, 'fail');
      assert.match(open.text, /mode 0777.*chmod 07/);
      chmodSync(join(n.dir, key), 0o755);
      assert.equal((await check(id, { ...n.env, owner: n.env.owner + 1 })).status, 'fail');
      const full = await check(id, { ...n.env, freeBytes: () => 10 });
      assert.equal(full.status, id === 'tmp-dir' ? 'fail' : 'ok');
      rmSync(join(n.dir, key), { recursive: true });
      assert.equal((await check(id, n.env)).status, 'fail');
    });
  }

  it('tmp-dir: world-writable with the sticky bit (like /var/tmp) passes', async () => {
    const n = node();
    chmodSync(join(n.dir, 'tmp'), 0o1777);
    assert.equal((await check('tmp-dir', n.env)).status, 'ok');
  });

  it('cache-dir: open to others or full fails; absent (created on use), 0700, or IMAGE_CACHE=no passes', async () => {
    const n = node();
    assert.equal((await check('cache-dir', n.env)).status, 'ok');
    mkdirSync(join(n.dir, 'cache'), { mode: 0o755 });
    chmodSync(join(n.dir, 'cache'), 0o755);
    assert.equal((await check('cache-dir', n.env)).status, 'fail');
    chmodSync(join(n.dir, 'cache'), 0o700);
    assert.equal((await check('cache-dir', n.env)).status, 'ok');
    assert.equal((await check('cache-dir', { ...n.env, freeBytes: () => 10 })).status, 'fail');
    writeFileSync(n.configFile, 'IMAGE_CACHE=no\n', { flag: 'a' });
    assert.equal((await check('cache-dir', { ...n.env, freeBytes: () => 10 })).status, 'skip');
  });

  it('os-definition: absent, or scripts linking elsewhere, or an old parameters.list fails; install-os passes', async () => {
    const n = node();
    const absent = await check('os-definition', n.env);
    assert.equal(absent.status, 'fail');
    assert.match(absent.text, /install-os .*\/os\/snf-image/);
    // In the second directory of the search path: found there.
    const osDir = join(n.dir, 'os2', 'snf-image');
    installOsDefinition({
      dir: osDir,
      binary: n.binary,
      variantsDir: join(n.dir, 'variants'),
      configFile: n.configFile,
    });
    assert.equal((await check('os-definition', n.env)).status, 'ok');
    const other = join(n.dir, 'other-binary');
    writeFileSync(other, 'x');
    rmSync(join(osDir, 'create'));
    symlinkSync(other, join(osDir, 'create'));
    const wrong = await check('os-definition', n.env);
    assert.equal(wrong.status, 'fail');
    assert.match(wrong.text, /create links to .*other-binary/);
    installOsDefinition({
      dir: osDir,
      binary: n.binary,
      variantsDir: join(n.dir, 'variants'),
      configFile: n.configFile,
    });
    writeFileSync(join(osDir, 'parameters.list'), 'img_id old\n');
    assert.match((await check('os-definition', n.env)).text, /parameters.list/);
  });

  describe('https-trust', () => {
    let server: Server;
    let cert = '';
    let url = '';
    before(async () => {
      const dir = join(root, 'tls');
      mkdirSync(dir);
      const r = spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ]);
      assert.equal(r.status, 0, r.stderr.toString());
      cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
      server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (_req, res) => res.end('image'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      url = `https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/image.img`;
    });
    after(() => server.close());

    it('no https URL configured: skipped', async () => {
      assert.equal((await check('https-trust', node().env)).status, 'skip');
    });

    it('a configured image URL whose certificate is not trusted fails; trusted (its CA given) passes', async () => {
      const n = node(`IMG_ID=${url}\n`);
      const untrusted = await check('https-trust', n.env);
      assert.equal(untrusted.status, 'fail');
      assert.match(untrusted.text, /self[- ]signed/i);
      assert.equal((await check('https-trust', { ...n.env, extraCa: cert })).status, 'ok');
      // A preset in a variant file counts too.
      const v = node();
      writeFileSync(join(v.dir, 'variants', 'remote.conf'), `CONFIG_URL=${url}\n`);
      assert.equal((await check('https-trust', v.env)).status, 'fail');
    });
  });

  it('the report: one line per check with the fix, a summary, exit status 1 on any failure', async () => {
    const n = node();
    const reports = await runChecks(n.env, ['config', 'helper']);
    const text = renderReport(reports);
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0] ?? '', /^ok {4}configuration/);
    assert.match(lines[1] ?? '', /^FAIL {2}helper VM .* -> run snf-image-update-helper/);
    assert.equal(lines[2], '1 of 2 checks failed');
    assert.equal(doctorExitCode(reports), 1);
    assert.equal(doctorExitCode(await runChecks(n.env, ['config'])), 0);
    await assert.rejects(runChecks(n.env, ['config', 'bogus']), /--check: no check bogus \(checks: config, qemu/);
  });
});

describe('doctor documentation', () => {
  it('README and snf-image(8) name every check of the table', () => {
    const readme = readFileSync('README.md', 'utf8');
    const man = readFileSync('docs/man/snf-image.8', 'utf8').replace(/\\-/g, '-');
    for (const check of CHECKS) {
      assert.ok(readme.includes(`| \`${check.id}\` |`), `README: ${check.id}`);
      assert.ok(man.includes(check.id), `snf-image(8): ${check.id}`);
    }
    assert.ok(readme.includes('gnt-cluster command snf-image doctor'));
    assert.ok(man.includes('gnt-cluster command snf-image doctor'));
  });
});
