/**
 * The boot checker against a fake serial console that behaves like a Debian guest whose
 * kernel keeps printing: messages on the same line as "Password:", a login prompt that only
 * comes back when asked for, kernel lines in a command's output. None of these may turn a
 * good deployment into a failed check (the demo and the e2e tests use this checker).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BootedGuest } from '../support/boot-checker.ts';

const FAKE_CONSOLE = String.raw`
const { execSync } = require('node:child_process');
const quietLogin = process.argv[2] === 'quiet-login';
// As login(1) after a wrong password: a pause, then "Login incorrect", then a new prompt a while
// later; what is typed meanwhile is thrown away (the terminal's input is flushed).
const slowFailure = process.argv[2] === 'slow-failure';
const out = (s) => process.stdout.write(s);
const KMSG = '[    7.912345] powernow_k8: Found 1 AMD Athlon(tm) (1 cpu cores) (version 2.20.00)\r\n';
let state = 'login';
let user = '';
out('\r\nDebian GNU/Linux 12 template ttyS0\r\n\r\n');
if (!quietLogin) out('template login: ');
let pending = '';
process.stdin.on('data', (d) => {
  pending += d.toString();
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    if (state === 'login') {
      if (line === '') { out('\r\ntemplate login: '); continue; }
      user = line;
      out(line + '\r\nPassword: ' + KMSG);
      state = 'password';
    } else if (state === 'password') {
      if (user === 'root' && line === 'good') { out('\r\nLinux template 6.1.0\r\nroot@template:~# '); state = 'shell'; }
      else if (slowFailure) {
        state = 'delay';
        setTimeout(() => {
          out('\r\n\r\nLogin incorrect\r\n');
          setTimeout(() => { out('template login: '); state = 'login'; pending = ''; }, 1500);
        }, 1000);
      }
      else { out('\r\n\r\nLogin incorrect\r\ntemplate login: '); state = 'login'; }
    } else if (state === 'delay') {
      continue;
    } else {
      out(line + '\r\n');
      let result = '';
      try { result = execSync(line, { shell: '/bin/sh', encoding: 'utf8' }); } catch (e) { result = String(e.stdout ?? ''); }
      const lines = result.split('\n');
      if (lines.length > 2) lines.splice(1, 0, KMSG.trimEnd());
      out(lines.join('\r\n') + 'root@template:~# ');
    }
  }
});
`;

describe('boot checker on a console shared with kernel messages', () => {
  const dir = mkdtempSync(join(tmpdir(), 'snf-console-'));
  const script = join(dir, 'fake-console.cjs');
  writeFileSync(script, FAKE_CONSOLE);
  after(() => rmSync(dir, { recursive: true, force: true }));
  const guests: BootedGuest[] = [];
  after(() => {
    for (const g of guests) g.kill();
  });
  const attach = (...args: string[]) => {
    const guest = BootedGuest.attach(process.execPath, [script, ...args]);
    guest.promptNudgeMs = 500;
    guests.push(guest);
    return guest;
  };

  it('logs in although a kernel message follows "Password:" on the same line', async () => {
    const guest = attach();
    assert.equal(await guest.login('root', 'good', 10_000), true);
  });

  it('says false for a wrong password, then logs in with the right one', async () => {
    const guest = attach();
    assert.equal(await guest.login('root', 'bad', 10_000), false);
    assert.equal(await guest.login('root', 'good', 10_000), true);
  });

  it('after a failed try, waits for the new login prompt instead of answering the failed one', async () => {
    const guest = attach('slow-failure');
    assert.equal(await guest.login('root', 'bad', 10_000), false);
    assert.equal(await guest.login('root', 'good', 10_000), true);
  });

  it('asks for a fresh login prompt when none is shown', async () => {
    const guest = attach('quiet-login');
    assert.equal(await guest.login('root', 'good', 10_000), true);
  });

  it("a command's output comes back without the kernel lines interleaved in it", async () => {
    const guest = attach();
    assert.equal(await guest.login('root', 'good', 10_000), true);
    assert.equal(await guest.run('printf "one\\ntwo\\nthree\\n"', 10_000), 'one\ntwo\nthree');
    assert.equal(await guest.run('hostname -s >/dev/null; echo template', 10_000), 'template');
  });

  it('reports clearly when it really cannot log in', async () => {
    const guest = attach('quiet-login');
    guest.promptNudgeMs = 60_000;
    await assert.rejects(guest.login('root', 'good', 1_000), /cannot log in: no login prompt within 1 s/);
  });
});
