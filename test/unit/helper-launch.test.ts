/**
 * launchHelper against a fake QEMU: a shell script that finds the serial-port files on its
 * command line and writes into them what a hostile helper VM would. What reaches the log,
 * the monitor and the outcome is bounded and printable; a helper that timed out has failed
 * whatever it wrote afterwards.
 */
import assert from 'node:assert/strict';
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { launchHelper, type LaunchOptions } from '../../src/helper-vm/launch.ts';
import { configureLogging } from '../../src/log/logger.ts';
import type { MonitorMessage } from '../../src/monitor/messages.ts';

const root = mkdtempSync(join(tmpdir(), 'snf-launch-'));
const floppy = openSync('/dev/null', 'r');
after(() => {
  closeSync(floppy);
  rmSync(root, { recursive: true, force: true });
});

/** A fake QEMU: $console, $result and $monitor name the serial files, then `body` runs. */
function fakeQemu(name: string, body: string): string {
  const file = join(root, name);
  writeFileSync(
    file,
    `#!/bin/sh
n=0
for a in "$@"; do
  case "$a" in
    file,id=serial*,path=*) p="\${a#*,path=}"; case $n in 0) console="$p";; 1) result="$p";; 2) monitor="$p";; esac; n=$((n+1));;
  esac
done
${body}
`,
  );
  chmodSync(file, 0o755);
  return file;
}

function options(qemu: string, extra: Partial<LaunchOptions> = {}): LaunchOptions & { sent: MonitorMessage[] } {
  const workDir = mkdtempSync(join(root, 'work-'));
  const sent: MonitorMessage[] = [];
  return {
    qemu,
    workDir,
    softTimeoutSeconds: 60,
    hardTimeoutSeconds: 5,
    monitor: { send: (m) => void sent.push(m), close: async () => {} },
    media: { floppyFd: floppy },
    command: {
      accel: 'tcg',
      memoryMiB: 64,
      user: 'nobody',
      userOption: 'runas',
      helper: { kernel: '/dev/null', initrd: '/dev/null', root: '/dev/null', rootFsType: 'ext4' },
      disks: [],
      debug: false,
    },
    sent,
    ...extra,
  };
}

function captureLog(): string[] {
  const lines: string[] = [];
  configureLogging({ format: 'text', sink: { write: (line) => void lines.push(line) } });
  return lines;
}

describe('launchHelper with a hostile helper (fake QEMU)', () => {
  after(() => configureLogging({}));

  it('reads at most a few KiB of a huge result port', async () => {
    const qemu = fakeQemu('huge-result', `{ printf 'ERROR: '; head -c 67108864 /dev/zero | tr '\\0' x; } > "$result"`);
    const outcome = await launchHelper(options(qemu));
    assert.equal(outcome.ok, false);
    assert.ok(!outcome.ok && outcome.reason === 'error', JSON.stringify(outcome).slice(0, 200));
    assert.ok(outcome.message.length <= 4096, `message of ${outcome.message.length} characters`);
    assert.match(outcome.message, /^x+/);
  });

  it('escapes terminal control characters in console lines, monitor events and the result', async () => {
    const lines = captureLog();
    const qemu = fakeQemu(
      'escapes',
      `printf 'boot \\033[2J\\033]0;owned\\007 done \\033[31mred\\r\\n' > "$console"
printf 'WARNING:bad \\033[1mbold\\033[0m \\010\\177 text\\nTASK_START:Fix\\033[2KTable\\n' > "$monitor"
printf 'ERROR: failed \\033[2J here\\n' > "$result"`,
    );
    const o = options(qemu);
    const outcome = await launchHelper(o);
    configureLogging({});
    const log = lines.join('');
    assert.match(log, /HELPER: boot /);
    assert.doesNotMatch(log, /[\x00-\x08\x0b-\x1f\x7f]/, 'no raw control character reaches the log');
    const relayed = JSON.stringify(o.sent);
    assert.match(relayed, /bad .*bold/);
    assert.doesNotMatch(relayed, /\\u00(0[0-8]|1[0-9a-f]|7f)/i, 'no control character in a monitor message');
    assert.ok(!outcome.ok);
    assert.match(outcome.message, /^failed .*here$/);
    assert.doesNotMatch(outcome.message, /[\x00-\x1f\x7f]/);
  });

  it('a helper that timed out has failed even when it writes SUCCESS afterwards', async () => {
    const qemu = fakeQemu('late-success', `trap 'echo SUCCESS > "$result"; exit 0' TERM\nwhile :; do sleep 0.1; done`);
    const outcome = await launchHelper(options(qemu, { softTimeoutSeconds: 1, hardTimeoutSeconds: 5 }));
    assert.equal(outcome.ok, false);
    assert.ok(!outcome.ok && outcome.reason === 'timeout');
  });
});
