/**
 * Boots a deployed disk read-only (QEMU -snapshot) and looks inside through the serial
 * console: logs in, runs commands, reports each check. KVM when it really boots a stock
 * kernel here (the same probe as the helper), else TCG.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { kvmBootsKernel } from '../../src/helper-vm/qemu-probe.ts';

export interface BootOptions {
  disk: string;
  format?: 'raw' | 'qcow2';
  memoryMiB?: number;
  nic?: { mac: string };
  /** A kernel to probe KVM with (the helper's); without it TCG is used. */
  probeKernel?: string;
  log?: (text: string) => void;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

let kvmAnswer: boolean | undefined;

/** A guest kernel message on the console ("[   12.345678] powernow_k8: ..."). */
const KERNEL_LINE = /^\[\s*\d+\.\d+\]/;

async function accel(probeKernel: string | undefined): Promise<'kvm' | 'tcg'> {
  if (!existsSync('/dev/kvm') || !probeKernel) return 'tcg';
  kvmAnswer ??= await kvmBootsKernel('qemu-system-x86_64', probeKernel);
  return kvmAnswer ? 'kvm' : 'tcg';
}

export class BootedGuest {
  readonly #child: ChildProcess;
  #buffer = '';
  readonly #log: (text: string) => void;
  readonly startedAt = Date.now();
  accel: 'kvm' | 'tcg' = 'tcg';
  /** How long to wait for a prompt before asking for a fresh one (an empty line). */
  promptNudgeMs = 20_000;

  private constructor(child: ChildProcess, log: (text: string) => void) {
    this.#child = child;
    this.#log = log;
    child.stdout?.on('data', (d: Buffer) => {
      const text = d.toString('utf8');
      this.#buffer += text;
      this.#log(text);
    });
  }

  static async boot(options: BootOptions): Promise<BootedGuest> {
    const chosen = await accel(options.probeKernel);
    const args = [
      '-accel',
      chosen,
      '-machine',
      'pc',
      '-cpu',
      chosen === 'kvm' ? 'host' : 'max',
      '-smp',
      '2',
      '-m',
      String(options.memoryMiB ?? 1024),
      '-nodefaults',
      '-no-user-config',
      '-nographic',
      '-no-reboot',
      '-snapshot',
      '-drive',
      `file=${options.disk},format=${options.format ?? 'raw'},if=virtio`,
      '-serial',
      'stdio',
      ...(options.nic
        ? ['-netdev', 'user,id=n0,restrict=on', '-device', `virtio-net-pci,netdev=n0,mac=${options.nic.mac}`]
        : []),
    ];
    const guest = BootedGuest.attach('qemu-system-x86_64', args, options.log);
    guest.accel = chosen;
    return guest;
  }

  /** A console on any program's stdin/stdout (QEMU's serial port; a fake console in tests). */
  static attach(command: string, args: readonly string[], log?: (text: string) => void): BootedGuest {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    return new BootedGuest(child, log ?? (() => undefined));
  }

  /** Waits until the console output (since `from`) matches; returns the match end offset. */
  async expect(pattern: RegExp, timeoutMs: number, from = 0): Promise<{ match: RegExpExecArray; end: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const slice = this.#buffer.slice(from);
      const m = pattern.exec(slice);
      if (m) return { match: m, end: from + m.index + m[0].length };
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${pattern} (last output: ${JSON.stringify(this.#buffer.slice(-300))})`);
      if (this.#child.exitCode !== null)
        throw new Error(`the guest's QEMU exited (${this.#child.exitCode}) while waiting for ${pattern}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  get length(): number {
    return this.#buffer.length;
  }

  send(text: string): void {
    this.#child.stdin?.write(text);
  }

  /** Waits for `pattern`, asking for a fresh prompt (an empty line) while it does not come. */
  async #prompt(pattern: RegExp, timeoutMs: number, from: number, what: string): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let at = from;
    for (let nudges = 0; ; nudges++) {
      const wait = Math.min(this.promptNudgeMs, Math.max(1, deadline - Date.now()));
      try {
        return (await this.expect(pattern, wait, at)).end;
      } catch (error) {
        if (this.#child.exitCode !== null) throw error;
        if (Date.now() >= deadline) {
          throw new Error(
            `cannot log in: no ${what} prompt within ${Math.round(timeoutMs / 1000)} s after ${nudges} fresh-prompt requests (last output: ${JSON.stringify(this.#buffer.slice(-300))})`,
          );
        }
        // Kernel or service messages may have hidden the prompt or it was missed: ask again.
        at = this.length;
        this.send('\n');
      }
    }
  }

  /**
   * Tries a login; true when a shell answers, false on "Login incorrect". Prompts are found
   * anywhere in the output, not at a line end: the guest kernel's messages share the console
   * and may follow "Password:" on the same line.
   */
  /** Where the output of the last login try ends: prompts before it are stale. */
  #triedUpTo = 0;

  async login(user: string, password: string, timeoutMs = 300_000): Promise<boolean> {
    // The last login prompt shown: an earlier one (before a failed try) is stale.
    // Never before the end of the previous try: right after "Login incorrect" (login waits a few
    // seconds before it asks again) the newest prompt in the output is still the failed one.
    const from = Math.max(this.#triedUpTo, this.length - 200, 0);
    let at = await this.#prompt(/login: (?![\s\S]*login: )/, timeoutMs, from, 'login');
    this.send(`${user}\n`);
    at = await this.#prompt(/Password: ?/, 60_000, at, 'password');
    this.send(`${password}\n`);
    const outcome = await this.expect(/(Login incorrect)|([#$] )/, 60_000, at);
    this.#triedUpTo = outcome.end;
    if (outcome.match[1] !== undefined) return false;
    // A "# " may also come from a message: a shell proves itself by running a command.
    const marker = `L${Math.random().toString(36).slice(2, 10)}`;
    // Typed as -O''K, printed as -OK: the terminal's echo of the typed line never matches.
    this.send(`echo ${marker}-O''K\n`);
    const proof = await this.expect(new RegExp(`(${marker}-OK)|(Login incorrect)`), 60_000, outcome.end);
    return proof.match[1] !== undefined;
  }

  /** Runs a shell command; returns its output (between unique markers), kernel log lines removed. */
  async run(command: string, timeoutMs = 60_000): Promise<string> {
    const marker = `M${Math.random().toString(36).slice(2, 10)}`;
    const from = this.length;
    // Typed as -''B / -''E, printed as -B / -E: the terminal's echo of the typed line (before
    // `stty -echo`) never matches. Not anchored: the begin marker may follow the prompt
    // ("# M…-B") and kernel messages may follow a marker on its line.
    this.send(`echo ${marker}-''B; ${command}; echo ${marker}-''E\n`);
    const begin = await this.expect(new RegExp(`${marker}-B`), timeoutMs, from);
    const end = await this.expect(new RegExp(`${marker}-E`), timeoutMs, begin.end);
    const text = this.#buffer.slice(begin.end, end.end - end.match[0].length).replace(/\r/g, '');
    return text
      .split('\n')
      .filter((line) => !KERNEL_LINE.test(line))
      .join('\n')
      .trim();
  }

  async poweroff(): Promise<void> {
    this.send('poweroff -f\n');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 20_000);
    await new Promise<void>((resolve) =>
      this.#child.exitCode !== null ? resolve() : this.#child.once('exit', () => resolve()),
    );
    clearTimeout(timer);
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}

export interface ExpectedState {
  oldPassword?: string;
  password: string;
  hostname?: string;
  /** Root filesystem at least this many bytes (the disk grown into). */
  minRootBytes?: number;
  /** Host key fingerprints that must NOT be present any more (the template's). */
  oldHostKeyFingerprints?: string[];
  files?: Record<string, string>;
  address?: { mac: string; cidr: string };
  sshdRunning?: boolean;
  /**
   * Console output to wait for before the first login (e.g. cloud-init's final message: the
   * login prompt may come before cloud-init has set the password).
   */
  waitForConsole?: { pattern: RegExp; timeoutMs: number };
  /** How long to wait for the login prompt (default 300 s). */
  loginTimeoutMs?: number;
  /** `hostname -f` (the name resolves through /etc/hosts). */
  fqdn?: string;
  /** More checks, in order: a shell command and its whole expected output (trimmed). */
  commands?: Array<{ name: string; command: string; expect: string; timeoutMs?: number }>;
}

/** Boots the disk and runs every check of `expected`; never throws for a failed check. */
export async function checkDeployedDisk(
  options: BootOptions,
  expected: ExpectedState,
): Promise<{ checks: CheckResult[]; bootSeconds: number }> {
  const guest = await BootedGuest.boot(options);
  const checks: CheckResult[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  let bootSeconds = 0;
  try {
    if (expected.waitForConsole) {
      const { pattern, timeoutMs } = expected.waitForConsole;
      try {
        const seen = await guest.expect(pattern, timeoutMs);
        add(`console ${pattern}`, true, seen.match[0]);
      } catch (error) {
        add(`console ${pattern}`, false, (error as Error).message.slice(0, 200));
      }
    }
    if (expected.oldPassword !== undefined) {
      const oldWorks = await guest.login('root', expected.oldPassword, expected.loginTimeoutMs);
      bootSeconds = (Date.now() - guest.startedAt) / 1000;
      add('old password rejected', !oldWorks, oldWorks ? 'the template password still logs in' : 'Login incorrect');
      if (oldWorks) guest.send('exit\n');
    }
    const newWorks = await guest.login('root', expected.password, expected.loginTimeoutMs);
    if (bootSeconds === 0) bootSeconds = (Date.now() - guest.startedAt) / 1000;
    add('new password accepted', newWorks, newWorks ? 'logged in' : 'Login incorrect');
    if (!newWorks) return { checks, bootSeconds };
    // Quiet the kernel on the console (dmesg -n 1) so its messages stop interleaving.
    await guest.run('export TERM=dumb PS1="# "; stty -echo; dmesg -n 1 2>/dev/null; true');
    if (expected.hostname !== undefined) {
      const name = await guest.run('hostname');
      add('hostname', name === expected.hostname, name);
    }
    if (expected.minRootBytes !== undefined) {
      const size = Number(await guest.run('df -B1 --output=size / | tail -1'));
      add('root filesystem grown', size >= expected.minRootBytes, `${size} bytes (want >= ${expected.minRootBytes})`);
    }
    if (expected.oldHostKeyFingerprints) {
      const fps = await guest.run('for f in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$f"; done');
      const reused = expected.oldHostKeyFingerprints.filter((fp) => fps.includes(fp));
      add(
        'new host keys',
        fps.includes('SHA256:') && reused.length === 0,
        reused.length > 0 ? `template keys still present: ${reused.join(' ')}` : `${fps.split('\n').length} keys`,
      );
    }
    if (expected.sshdRunning) {
      const active = await guest.run(
        'systemctl is-active ssh.service sshd.service 2>/dev/null | grep -c ^active; true',
      );
      add('sshd running', Number(active) >= 1, `active units: ${active}`);
    }
    if (expected.fqdn !== undefined) {
      const name = await guest.run('hostname -f 2>&1');
      add('hostname -f', name === expected.fqdn, name);
    }
    for (const c of expected.commands ?? []) {
      const got = await guest.run(c.command, c.timeoutMs);
      add(c.name, got === c.expect, got.slice(0, 200));
    }
    for (const [path, content] of Object.entries(expected.files ?? {})) {
      const got = await guest.run(`cat ${path}`);
      add(`file ${path}`, got === content.trim(), got.slice(0, 80));
    }
    if (expected.address) {
      const out = await guest.run(
        `for i in /sys/class/net/*; do [ "$(cat $i/address)" = "${expected.address.mac}" ] && ip -color=never -o addr show dev "\${i##*/}"; done; true`,
      );
      add(
        `address ${expected.address.cidr} on ${expected.address.mac}`,
        out.includes(` ${expected.address.cidr} `),
        out.split('\n')[0] ?? '',
      );
    }
    await guest.poweroff();
  } finally {
    guest.kill();
  }
  return { checks, bootSeconds };
}
