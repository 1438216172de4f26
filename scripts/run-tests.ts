/**
 * The README's test command (npm test): format and lint (Biome, knip), typecheck, build the
 * single executable, then run
 * every test file (unit, integration, end-to-end, Ganeti) in one node:test run so the
 * closing summary counts them all. Tests that need root, KVM, a helper VM or Ganeti say
 * why when they skip. The tests get a TMPDIR of their own under /var/tmp, removed at the
 * end (a leaked temporary file cannot pile up in /tmp).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const tmpdir = `/var/tmp/snf-test-run-${process.pid}`;

function run(what: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  console.log(`\n== ${what}: ${command} ${args.join(' ')}`);
  const r = spawnSync(command, args, { stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`== ${what} failed (exit ${r.status ?? r.signal})`);
    rmSync(tmpdir, { recursive: true, force: true });
    process.exit(r.status ?? 1);
  }
}

// The Debian packages the tests need (scripts/setup.sh installs them, as root): tests that
// lack one skip, so say so up front.
const setup = spawnSync('bash', ['scripts/setup.sh', '--check'], { encoding: 'utf8' });
if (setup.status !== 0) console.log(`\n== ${setup.stdout.trim()}: run scripts/setup.sh as root`);

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...testFiles(path));
    else if (entry.endsWith('.test.ts')) out.push(path);
  }
  return out.sort();
}

const only = process.argv.slice(2);
// Formatting, lint rules and unused code (Biome, knip) first: they take seconds.
if (!process.env.SNF_SKIP_LINT) run('lint', 'npm', ['run', '--silent', 'lint']);
if (!process.env.SNF_SKIP_BUILD) run('build', 'npm', ['run', '--silent', 'build']);
const files =
  only.length > 0
    ? only
    : ['test/unit', 'test/integration', 'test/e2e', 'test/ganeti'].flatMap((d) => {
        try {
          return testFiles(d);
        } catch {
          return [];
        }
      });
// Like /tmp: tests may drop privileges (HELPER_USER). Removed on an interrupt too (the
// handlers run once the test run, which got the same signal, has ended).
mkdirSync(tmpdir, { recursive: true });
chmodSync(tmpdir, 0o1777);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    rmSync(tmpdir, { recursive: true, force: true });
    process.exit(130);
  });
run(
  'tests',
  process.execPath,
  ['--test', '--test-reporter=spec', '--test-concurrency=2', '--test-timeout=1800000', ...files],
  { ...process.env, TMPDIR: tmpdir },
);
rmSync(tmpdir, { recursive: true, force: true });
