import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, renderDefaultConfigFile, renderEffectiveConfig } from '../../src/config/load.ts';
import { parseShellConf } from '../../src/config/shell-conf.ts';
import { SETTING_KEYS, SETTINGS } from '../../src/config/settings.ts';

function setup(main: string, variant?: string): { file: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'snf-conf-'));
  const variants = join(dir, 'variants');
  mkdirSync(variants);
  const file = join(dir, 'snf-image.conf');
  writeFileSync(file, `VARIANTS_DIR=${variants}\n${main}`);
  if (variant !== undefined) writeFileSync(join(variants, 'default.conf'), variant);
  return { file, dir };
}

describe('configuration', () => {
  it('has typed defaults for every key', () => {
    const { settings } = loadConfig({ configFile: '/dev/null' });
    assert.equal(settings.HELPER_DIR, '/var/lib/snf-image/helper');
    assert.equal(settings.HELPER_SOFT_TIMEOUT, 120);
    assert.equal(settings.HELPER_HARD_TIMEOUT, 5);
    assert.equal(settings.HELPER_MEMORY, 512);
    assert.equal(settings.HELPER_USER, 'nobody');
    assert.equal(settings.HELPER_ACCEL, 'auto');
    assert.equal(settings.HELPER_DEBUG, false);
    assert.equal(settings.IMAGE_DIR, '/var/lib/snf-image');
    assert.deepEqual(settings.DHCP_TAGS, ['auto', 'dhcp', 'nfdhcpd']);
    assert.equal(settings.DEFAULT_NIC_CONFIG, 'dhcp');
    assert.equal(settings.WINDOWS_TIMEZONE, 'GMT Standard Time');
    assert.equal(settings.CONFIG_URL_MAX_SIZE, 1024 * 1024);
  });

  it('reads the main file, then the variant file over it', () => {
    const { file } = setup(
      'HELPER_MEMORY=1024\nHELPER_SOFT_TIMEOUT=5m\nIMAGE_DEBUG=yes\n',
      'HELPER_MEMORY=768\nIMG_FORMAT=diskdump\n',
    );
    const config = loadConfig({ configFile: file, variant: 'default', requireVariantFile: true });
    assert.equal(config.settings.HELPER_MEMORY, 768);
    assert.equal(config.settings.HELPER_SOFT_TIMEOUT, 300);
    assert.equal(config.settings.IMAGE_DEBUG, true);
    assert.equal(config.paramDefaults.get('img_format'), 'diskdump');
    assert.match(config.origins.HELPER_MEMORY ?? '', /default\.conf:1$/);
  });

  it('warns about unknown and retired keys', () => {
    const { file } = setup('HELPER_MEMROY=1\nHELPER_URL=http://x\nCURL="curl -k"\n');
    const { warnings } = loadConfig({ configFile: file });
    assert.equal(warnings.length, 3);
    assert.match(warnings[0] ?? '', /snf-image\.conf:2: unknown key HELPER_MEMROY ignored/);
    assert.match(warnings[1] ?? '', /HELPER_URL is no longer used/);
    assert.match(warnings[2] ?? '', /CURL is no longer used/);
  });

  it('fails on bad values naming the file, line, key and rule', () => {
    const cases: Array<[string, RegExp]> = [
      ['HELPER_MEMORY=lots', /snf-image\.conf:2: HELPER_MEMORY: must be a whole number \(got 'lots'\)/],
      ['HELPER_SOFT_TIMEOUT=2x', /HELPER_SOFT_TIMEOUT: must be a duration/],
      ['HELPER_ACCEL=xen', /HELPER_ACCEL: must be auto, kvm or tcg/],
      ['DEFAULT_NIC_CONFIG=static', /DEFAULT_NIC_CONFIG: must be one of/],
      ['HELPER_DEBUG=maybe', /HELPER_DEBUG: must be yes or no/],
      ['IMAGE_DIR=relative', /IMAGE_DIR: must be an absolute path/],
      ['HELPER_MEMORY=0', /HELPER_MEMORY: must be greater than 0/],
    ];
    for (const [line, rule] of cases) {
      const { file } = setup(`${line}\n`);
      assert.throws(() => loadConfig({ configFile: file }), rule, line);
    }
  });

  it('HELPER_UIDS: a range of uids by default, empty for one HELPER_USER, checked in one line; a HELPER_USER it overrides is warned about', () => {
    assert.deepEqual(loadConfig({ configFile: '/dev/null' }).settings.HELPER_UIDS, {
      first: 1879048192,
      last: 1879113727,
    });
    assert.equal(loadConfig({ configFile: setup('HELPER_UIDS=\n').file }).settings.HELPER_UIDS, undefined);
    for (const bad of ['5-10', '2000-1000', '1000-4294967295', 'many']) {
      assert.throws(
        () => loadConfig({ configFile: setup(`HELPER_UIDS=${bad}\n`).file }),
        /^UserError: [^\n]*snf-image\.conf:2: HELPER_UIDS: must be /,
        bad,
      );
    }
    const overridden = loadConfig({ configFile: setup('HELPER_USER=qemu\n').file });
    assert.match(
      overridden.warnings.join('\n'),
      /snf-image\.conf:2: HELPER_USER is used only when HELPER_UIDS is empty/,
    );
    assert.deepEqual(loadConfig({ configFile: setup('HELPER_USER=qemu\nHELPER_UIDS=\n').file }).warnings, []);
    assert.match(
      renderEffectiveConfig(loadConfig({ configFile: '/dev/null' })),
      /^HELPER_UIDS=1879048192-1879113727$/m,
    );
    assert.match(
      renderEffectiveConfig(loadConfig({ configFile: setup('HELPER_UIDS=\n').file })),
      /^HELPER_UIDS="" {2}#/m,
    );
  });

  it('requires the variant file for Ganeti scripts', () => {
    const { file } = setup('');
    assert.throws(
      () => loadConfig({ configFile: file, variant: 'default', requireVariantFile: true }),
      /OS_VARIANT: no variant file .*default\.conf for variant 'default'/,
    );
    assert.throws(
      () => loadConfig({ configFile: file, variant: '../x', requireVariantFile: true }),
      /OS_VARIANT: '\.\.\/x' is not a valid variant name/,
    );
    assert.doesNotThrow(() => loadConfig({ configFile: file, variant: '', requireVariantFile: true }));
  });

  it('renders the effective configuration and a default file that parses back to the defaults', () => {
    const { file } = setup('HELPER_MEMORY=1024\nIMG_PASSWD=preset-secret\n');
    const text = renderEffectiveConfig(loadConfig({ configFile: file }));
    assert.match(text, /^HELPER_MEMORY=1024 {2}# .*snf-image\.conf:2$/m);
    assert.doesNotMatch(text, /preset-secret/);
    const commented = renderDefaultConfigFile();
    const uncommented = commented.replace(/^#([A-Z][A-Z0-9_]*=)/gm, '$1');
    const parsed = Object.fromEntries(parseShellConf(uncommented, 'default').map((e) => [e.key, e.value]));
    for (const key of SETTING_KEYS) assert.equal(parsed[key], SETTINGS[key].default, key);
  });
});
