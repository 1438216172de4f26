/**
 * The single executable runs as root (Ganeti's OS scripts, the helper VM's PID 1): the
 * environment must not be able to inject code or runtime flags into it through NODE_OPTIONS.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BINARY, binaryMissingReason } from '../support/binary.ts';

describe('the executable ignores NODE_OPTIONS', { skip: binaryMissingReason() }, () => {
  it('a --require given through NODE_OPTIONS does not run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-node-options-'));
    try {
      const marker = join(dir, 'ran');
      const payload = join(dir, 'payload.cjs');
      writeFileSync(payload, `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x');\n`);
      const r = spawnSync(BINARY, ['--version'], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_OPTIONS: `--require ${payload}` },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^\d+\.\d+\.\d+/);
      assert.equal(existsSync(marker), false, 'the injected module ran');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
