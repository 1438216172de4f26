/**
 * `snf-image deploy` under a pseudo-terminal (script(1) from util-linux): the terminal view
 * shows the progress bar and one line per helper task, each line once, with the result and
 * the total; --verbose on a terminal and a deploy whose stderr is a pipe keep the full log.
 * Needs root and a helper VM (real QEMU).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { BINARY } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { makeSyntheticGuest } from '../support/synthetic-guest.ts';
import { screenLines } from '../support/terminal-screen.ts';

const skip = helperSkipReason() || (hasScript() ? false : 'script(1) from util-linux is not installed');
let helperDir = '';

function hasScript(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v script'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

interface Run {
  code: number | null;
  output: string;
}

/** Runs the binary with `args`; on a terminal: under script(1), output is what the pty got. */
function run(node: NodeFixture, args: string[], terminal: boolean): Promise<Run> {
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', SNF_IMAGE_CONFIG: node.configFile };
  const command = [BINARY, ...args].map(shellQuote).join(' ');
  const child = terminal
    ? spawn('script', ['-qec', command, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(BINARY, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

function deployArgs(node: NodeFixture, disk: string, extra: string[] = []): string[] {
  const passwordFile = join(node.root, 'password');
  writeFileSync(passwordFile, 'Terminal-View-pw-1\n', { mode: 0o600 });
  return [
    'deploy',
    '--disk',
    disk,
    '--img-id',
    'guest.img',
    '--img-format',
    'diskdump',
    '--hostname',
    'tty.example.org',
    '--passwd-file',
    passwordFile,
    ...extra,
  ];
}

function nodeWithGuest(): { node: NodeFixture; disk: string } {
  const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=600\n`);
  makeSyntheticGuest(join(node.imageDir, 'guest.img'));
  const disk = join(node.root, 'disk0');
  execFileSync('truncate', ['-s', '128M', disk]);
  return { node, disk };
}

describe('terminal view of snf-image deploy', { skip, timeout: 1_800_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
  });

  it('on a terminal: the bar, one line per task, each line once, the result and the total', async () => {
    const { node, disk } = nodeWithGuest();
    const r = await run(node, deployArgs(node, disk), true);
    const lines = screenLines(r.output);
    const shown = lines.join('\n');
    assert.equal(r.code, 0, shown);
    assert.match(shown, /^\[#{30}\] 100\.0% \d+\.\d MiB of \d+\.\d MiB \d+ MiB\/s$/m, 'the finished bar');
    const tasks = lines.filter((l) => /^ {2}[✓!–✗] \S+ +(\d+\.\d s)? +(done|warning|skipped|failed)/.test(l));
    const names = tasks.map((l) => l.trim().split(/\s+/)[1]);
    for (const task of ['FixPartitionTable', 'MountImage', 'AssignHostname', 'ChangePassword', 'UmountImage'])
      assert.equal(names.filter((n) => n === task).length, 1, `one line for ${task}:\n${shown}`);
    assert.ok(
      tasks.every((l) => !l.includes('✗')),
      shown,
    );
    assert.match(lines.at(-1) ?? '', /^✓ done in \d+\.\d s$/);
    // Nothing twice: no monitor JSON, no helper console, no task timing log lines, no repeated line.
    assert.doesNotMatch(shown, /\[MONITOR\]|HELPER:|helper task timing|INFO /);
    const repeated = lines.filter((l, i) => l.trim() !== '' && lines.indexOf(l) !== i);
    assert.deepEqual(repeated, [], shown);
    assert.ok(!r.output.includes('Terminal-View-pw-1'));
  });

  it('--verbose on a terminal, and stderr not a terminal, keep the full log', async () => {
    const { node, disk } = nodeWithGuest();
    const verbose = await run(node, deployArgs(node, disk, ['--no-helper', '--verbose']), true);
    assert.equal(verbose.code, 0, verbose.output);
    assert.match(verbose.output, /INFO {2}deploying image/);
    assert.match(verbose.output, /\[MONITOR\] \{"type":"image-info","messages":\["Starting image copy\.\.\."\]/);
    assert.match(verbose.output, /\[#{30}\] 100\.0%/);
    const piped = await run(node, deployArgs(node, disk, ['--no-helper']), false);
    assert.equal(piped.code, 0, piped.output);
    assert.match(piped.output, /^\S+Z INFO {2}deploying image/m);
    assert.match(piped.output, /\[MONITOR\] \{"type":"image-copy-progress"/);
    assert.doesNotMatch(piped.output, /\r|\x1b\[/, 'no terminal control characters in a log');
    const quiet = await run(node, deployArgs(node, disk, ['--no-helper']), true);
    assert.equal(quiet.code, 0, quiet.output);
    assert.doesNotMatch(quiet.output, /\[MONITOR\]|INFO /);
    assert.match(screenLines(quiet.output).join('\n'), /Image customization skipped .*\n✓ done in \d+\.\d s$/);
  });
});
