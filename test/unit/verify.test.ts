import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runVerify, verifyProblems } from '../../src/ganeti/verify.ts';
import { VERIFY_ENV } from '../fixtures/ganeti-env.ts';

function node(): { env: Record<string, string>; imageDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'snf-verify-'));
  const imageDir = join(dir, 'images');
  mkdirSync(join(dir, 'variants'));
  mkdirSync(imageDir);
  writeFileSync(join(dir, 'variants', 'default.conf'), '');
  writeFileSync(join(dir, 'snf-image.conf'), `VARIANTS_DIR=${dir}/variants\nIMAGE_DIR=${imageDir}\n`);
  writeFileSync(join(imageDir, 'foo'), 'image');
  return { env: { ...VERIFY_ENV, SNF_IMAGE_CONFIG: join(dir, 'snf-image.conf') }, imageDir };
}

describe('verify parameters', () => {
  it('passes a good parameter set', () => {
    const { env } = node();
    assert.deepEqual(verifyProblems(env), []);
    const lines: string[] = [];
    assert.equal(
      runVerify(['parameters'], env, (l) => lines.push(l)),
      0,
    );
    assert.deepEqual(lines, []);
  });

  it('prints one line per problem and exits 1', () => {
    const { env } = node();
    const lines: string[] = [];
    const code = runVerify(
      ['parameters'],
      { ...env, OSP_IMG_FORMAT: 'bogus', OSP_IMG_PROPERTIES: '{"OSFAMILY": 3}' },
      (l) => lines.push(l),
    );
    assert.equal(code, 1);
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? '', /^img_format: 'bogus' is not a supported format/);
    assert.match(lines[1] ?? '', /^img_properties\.OSFAMILY: must be one of/);
  });

  it('refuses unknown checks with usage', () => {
    const lines: string[] = [];
    assert.equal(
      runVerify(['everything'], node().env, (l) => lines.push(l)),
      1,
    );
    assert.match(lines[0] ?? '', /^usage: verify parameters/);
  });

  it('finds a missing or escaping local image', () => {
    const { env, imageDir } = node();
    assert.deepEqual(verifyProblems({ ...env, OSP_IMG_ID: 'missing.img' }), [
      `img_id: local image 'missing.img' not found in IMAGE_DIR ${imageDir}`,
    ]);
    symlinkSync('/etc/hostname', join(imageDir, 'escape'));
    assert.deepEqual(verifyProblems({ ...env, OSP_IMG_ID: 'escape' }), [
      `img_id: local image 'escape' resolves outside IMAGE_DIR ${imageDir}`,
    ]);
    assert.deepEqual(verifyProblems({ ...env, OSP_IMG_ID: 'null' }), []);
  });

  it('explains the Ganeti 3.0.2 reinstall quirk when no parameter arrives', () => {
    const { env } = node();
    const { OSP_IMG_ID: _a, OSP_IMG_FORMAT: _b, OSP_IMG_PASSWD: _c, ...bare } = env;
    const found = verifyProblems(bare);
    assert.equal(found.length, 1);
    assert.match(
      found[0] ?? '',
      /no OS parameters reached snf-image; if this is gnt-instance reinstall, Ganeti 3\.0\.2 forgets/,
    );
  });

  it('leaves image checks to the config_url document', () => {
    const { env } = node();
    const { OSP_IMG_ID: _a, OSP_IMG_FORMAT: _b, ...rest } = env;
    assert.deepEqual(verifyProblems({ ...rest, OSP_CONFIG_URL: 'https://127.0.0.1/doc.json' }), []);
  });

  it('reports environment and configuration problems as lines too', () => {
    const { env } = node();
    assert.deepEqual(verifyProblems({ ...env, OS_API_VERSION: '' }), ['OS_API_VERSION: must be 10, 15 or 20']);
    assert.match(verifyProblems({ ...env, OS_VARIANT: 'nosuch' })[0] ?? '', /^OS_VARIANT: no variant file/);
  });
});
