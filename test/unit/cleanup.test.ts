/**
 * The cleanup registry in a real process: a signal runs the cleanups newest first (a slow
 * async one included) and exits 128+signal; nothing new registers once shutdown began; a
 * temporary directory goes; an uncaught error cleans up and exits 1.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';

const root = mkdtempSync(join(tmpdir(), 'snf-cleanup-'));
after(() => rmSync(root, { recursive: true, force: true }));
const registry = resolve('src/util/cleanup.ts');

/** A process that registers cleanups a, b (slow), c, a temporary directory, then `then`. */
function script(name: string, then: string): string {
  const file = join(root, `${name}.mts`);
  writeFileSync(
    file,
    `import { appendFileSync } from 'node:fs';
import { installCleanupHandlers, registerCleanup, temporaryDirectory } from ${JSON.stringify(registry)};
const out = ${JSON.stringify(join(root, `${name}.out`))};
const note = (text: string) => appendFileSync(out, text + '\\n');
installCleanupHandlers();
registerCleanup('a', () => note('a'));
registerCleanup('b', async () => { await new Promise((r) => setTimeout(r, 300)); note('b'); });
registerCleanup('c', () => {
  note('c');
  try { registerCleanup('late', () => note('late')); note('late registered'); } catch (error) { note('late refused: ' + (error as Error).message); }
});
const dir = await temporaryDirectory(${JSON.stringify(join(root, `${name}-tmp-`))}, 'scratch');
note('dir ' + dir.path);
${then}
`,
  );
  return file;
}

async function run(file: string, signal?: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  if (signal) {
    await new Promise<void>((ready) =>
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && ready()),
    );
    child.kill(signal);
  }
  const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  return { code, stderr };
}

function outcome(name: string): { lines: string[]; dir: string } {
  const lines = readFileSync(join(root, `${name}.out`), 'utf8')
    .trim()
    .split('\n');
  return {
    lines: lines.filter((l) => !l.startsWith('dir ')),
    dir: (lines.find((l) => l.startsWith('dir ')) ?? '').slice(4),
  };
}

describe('cleanup registry (real process)', () => {
  for (const [signal, number] of [
    ['SIGTERM', 15],
    ['SIGINT', 2],
    ['SIGHUP', 1],
  ] as const) {
    it(`${signal}: cleanups newest first, nothing new registers, the temporary directory goes, exit ${128 + number}`, async () => {
      const name = signal.toLowerCase();
      const r = await run(script(name, `console.log('ready'); setInterval(() => {}, 1000);`), signal);
      assert.equal(r.code, 128 + number, r.stderr);
      assert.match(r.stderr, new RegExp(`interrupted by ${signal}: stopping and cleaning up`));
      const { lines, dir } = outcome(name);
      assert.deepEqual(lines, ['c', `late refused: interrupted (${signal}): not starting anything new`, 'b', 'a']);
      assert.ok(dir !== '' && !existsSync(dir), `${dir} removed`);
    });
  }

  it('an uncaught error: one line, cleanups, exit 1', async () => {
    const r = await run(script('uncaught', `setTimeout(() => { throw new Error('boom\\nsecond line'); }, 10);`));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^snf-image: internal error: boom second line$/m);
    const { lines, dir } = outcome('uncaught');
    assert.deepEqual(lines, ['c', 'late refused: interrupted (internal error): not starting anything new', 'b', 'a']);
    assert.ok(!existsSync(dir));
  });

  it('a bare process.exit runs the synchronous fallbacks (the temporary directory goes)', async () => {
    const r = await run(script('exit', `process.exit(3);`));
    assert.equal(r.code, 3);
    assert.ok(!existsSync(outcome('exit').dir));
  });
});
