/**
 * Which accelerator runs the helper VM. An existing /dev/kvm is not proof that KVM boots a
 * stock kernel (on some hosts it hangs), so HELPER_ACCEL=auto boots the helper kernel once
 * under KVM and waits for its first console line; the answer is cached per host kernel,
 * QEMU version and helper kernel.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { log } from '../log/logger.ts';
import { UserError } from '../util/errors.ts';
import type { Accel } from './qemu-command.ts';

export interface QemuVersion {
  major: number;
  minor: number;
  text: string;
}

export async function qemuVersion(qemu: string): Promise<QemuVersion> {
  const { execa } = await import('execa');
  try {
    const r = await execa(qemu, ['-version'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, extendEnv: false });
    const m = /version (\d+)\.(\d+)(?:\.\d+)?/.exec(r.stdout);
    if (!m) throw new Error(`unexpected output: ${r.stdout.split('\n')[0] ?? ''}`);
    return { major: Number(m[1]), minor: Number(m[2]), text: m[0] };
  } catch (error) {
    throw new UserError(
      `QEMU: cannot run ${qemu} (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); install qemu-system-x86 or set QEMU`,
    );
  }
}

export function userOptionFor(version: QemuVersion): 'run-with' | 'runas' {
  return version.major >= 9 ? 'run-with' : 'runas';
}

const PROBE_SECONDS = 12;

/** Boots `kernel` under KVM and reports whether it printed its first console line in time. */
export async function kvmBootsKernel(qemu: string, kernel: string): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'snf-image-kvm-probe-'));
  const consoleFile = join(dir, 'console');
  try {
    const child = spawn(
      qemu,
      [
        '-accel',
        'kvm',
        '-machine',
        'pc',
        '-cpu',
        'host',
        '-nodefaults',
        '-no-user-config',
        '-nographic',
        '-no-reboot',
        '-m',
        '128',
        '-kernel',
        kernel,
        '-append',
        'console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 loglevel=8',
        '-chardev',
        `file,id=c,path=${consoleFile}`,
        '-serial',
        'chardev:c',
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + PROBE_SECONDS * 1000;
    let booted = false;
    while (Date.now() < deadline && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
      if (existsSync(consoleFile) && /Linux version|Command line/.test(readFileSync(consoleFile, 'latin1'))) {
        booted = true;
        break;
      }
    }
    child.kill('SIGKILL');
    await exited;
    return booted;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function chooseAccel(
  setting: 'auto' | 'kvm' | 'tcg',
  qemu: string,
  version: QemuVersion,
  kernel: string,
  cacheFile: string,
  kvmDevice = '/dev/kvm',
): Promise<Accel> {
  if (setting === 'tcg') return 'tcg';
  if (setting === 'kvm') {
    if (!existsSync(kvmDevice)) throw new UserError(`HELPER_ACCEL=kvm but ${kvmDevice} does not exist`);
    return 'kvm';
  }
  if (!existsSync(kvmDevice)) return 'tcg';
  const kernelHash = createHash('sha256')
    .update(await readFile(kernel))
    .digest('hex')
    .slice(0, 16);
  const key = `${release()}|${version.text}|${kernelHash}`;
  try {
    const cached = JSON.parse(await readFile(cacheFile, 'utf8')) as { key?: string; accel?: Accel };
    if (cached.key === key && (cached.accel === 'kvm' || cached.accel === 'tcg')) return cached.accel;
  } catch {
    // No cache yet.
  }
  const started = Date.now();
  const accel: Accel = (await kvmBootsKernel(qemu, kernel)) ? 'kvm' : 'tcg';
  log().info(
    { accel, seconds: (Date.now() - started) / 1000 },
    accel === 'kvm'
      ? 'KVM boots the helper kernel: using KVM'
      : '/dev/kvm exists but does not boot the helper kernel: using TCG (software emulation)',
  );
  await writeFile(cacheFile, `${JSON.stringify({ key, accel, probedAt: new Date().toISOString() })}\n`).catch(
    (error: unknown) => log().warn({ err: String(error) }, `cannot cache the accelerator probe in ${cacheFile}`),
  );
  return accel;
}
