/**
 * SecretWatch (test/support/secret-watch.ts), which the Ganeti suite relies on: it must see a
 * secret in another process's command line or environment, allow it only in the environment
 * of the allowed executable, and ignore the watched command's own process tree.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { SecretWatch, type SecretWatchReport } from '../support/secret-watch.ts';

const SH = realpathSync('/bin/sh');
const SLEEP = realpathSync('/bin/sleep');

/**
 * `sh -c 'sleep 30; true' [arg]` (its own process group) once the shell's child runs sleep:
 * the shell carries `arg` in its command line, both carry `env`.
 */
async function carrier(arg: string | undefined, env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(SH, ['-c', 'sleep 30; true', ...(arg === undefined ? [] : [arg])], {
    env: { PATH: '/usr/bin:/bin', ...env },
    stdio: 'ignore',
    detached: true,
  });
  await new Promise((resolve, reject) => child.once('spawn', resolve).once('error', reject));
  // Until the shell's child has exec'd sleep: right after the fork it is still a shell.
  const execdSleep = (): boolean => {
    const kid = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0];
    if (!kid) return false;
    try {
      return readlinkSync(`/proc/${kid}/exe`) === SLEEP;
    } catch {
      return false;
    }
  };
  while (!execdSleep()) await sleep(10);
  return child;
}

/** One scan of /proc now (not on the timer), then the watch and the carriers stop. */
function scanOnce(watch: SecretWatch, carriers: ChildProcess[]): SecretWatchReport {
  watch.scan();
  const report = watch.stop();
  for (const c of carriers) process.kill(-(c.pid as number), 'SIGKILL'); // the shell and its sleep
  return report;
}

describe('SecretWatch', { skip: process.platform === 'linux' ? false : 'needs /proc' }, () => {
  it('reports a secret in a command line and in an environment, not in the allowed executable', async () => {
    const SECRET = 'Watch-Secret-51c7-a'; // one per test: carriers of another test may still be exiting
    const inArgs = await carrier(SECRET);
    const inEnv = await carrier(undefined, { OSP_IMG_PASSWD: SECRET });
    const report = scanOnce(new SecretWatch(SECRET, '/nonexistent/allowed', 60_000), [inArgs, inEnv]);
    assert.equal(report.scans, 1);
    assert.ok(report.leaks.includes(`${inArgs.pid} ${SH}: command line`), report.leaks.join('\n'));
    assert.ok(report.leaks.includes(`${inEnv.pid} ${SH}: environment`), report.leaks.join('\n'));
    assert.ok(
      report.leaks.some((l) => l.endsWith(`${SLEEP}: environment`)),
      `the shell's child inherited the environment: ${report.leaks.join('\n')}`,
    );
    assert.equal(report.allowedHolders, 0);
  });

  it('allows the secret in the environment of the allowed executable, and ignores the watched tree', async () => {
    const SECRET = 'Watch-Secret-51c7-b';
    const allowed = await carrier(undefined, { OSP_IMG_PASSWD: SECRET });
    const ignored = await carrier(SECRET, { OSP_IMG_PASSWD: SECRET });
    const watch = new SecretWatch(SECRET, SH, 60_000);
    watch.ignoredRoot = ignored.pid;
    const report = scanOnce(watch, [allowed, ignored]);
    // allowed's sleep child is not the allowed executable: the one leak left
    assert.deepEqual(
      report.leaks.map((l) => l.replace(/^\d+ /, '')),
      [`${SLEEP}: environment`],
    );
    assert.equal(report.allowedHolders, 1);
  });
});
