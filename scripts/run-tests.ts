/**
 * The README's test command (npm test): format and lint (Biome, knip), typecheck, build the
 * single executable, then run
 * every test file (unit, integration, end-to-end, Ganeti) in one node:test run so the
 * closing summary counts them all. Tests that need root, KVM, a helper VM or Ganeti say
 * why when they skip.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function run(what: string, command: string, args: string[]): void {
  console.log(`\n== ${what}: ${command} ${args.join(' ')}`);
  const r = spawnSync(command, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`== ${what} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

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
run('tests', process.execPath, [
  '--test',
  '--test-reporter=spec',
  '--test-concurrency=2',
  '--test-timeout=1800000',
  ...files,
]);
