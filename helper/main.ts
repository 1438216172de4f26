/**
 * `snf-image helper`: PID 1 of the helper VM (started by the helper initrd). Reads the
 * config floppy, finds the instance disks by serial, detects what the properties do not
 * say, runs the task table, writes SUCCESS or "ERROR: ..." to the result port and powers
 * the VM off. It refuses to run anywhere but in the helper VM.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { parseConfigDocument, type ConfigDocument } from '../src/helper-vm/config-document.ts';
import { describeError } from '../src/util/errors.ts';
import { flagWarnings } from '../src/util/flags.ts';
import { readConfigFloppy } from './config-floppy.ts';
import { isYes, type HelperContext, type OsFamily } from './context.ts';
import { detectRoot } from './detect.ts';
import { findDiskBySerial } from './disks.ts';
import { run } from './exec.ts';
import { adapterFor } from './os/adapter.ts';
import { openPorts, type Ports } from './ports.ts';
import { runTasks } from './runner.ts';

const TARGET = '/run/snf-target';

function stamp(line: string): string {
  return `[${(process.uptime()).toFixed(2)}] ${line}`;
}

async function waitForDevice(path: string, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!existsSync(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(path)) throw new Error(`${path} did not appear`);
}

async function readConfig(): Promise<ConfigDocument> {
  if (!existsSync('/dev/fd0')) await run('modprobe', ['floppy'], { allowFailure: true });
  await waitForDevice('/dev/fd0', 10);
  const text = await readConfigFloppy('/dev/fd0');
  // Read once: the node goes, so that nothing the helper starts later finds the config
  // (with its secrets) there (the sandbox of CUSTOM_TASK and overrides has no /dev of ours at all).
  try {
    unlinkSync('/dev/fd0');
  } catch {
    // already gone
  }
  return parseConfigDocument(text);
}

async function debugShell(ports: Ports): Promise<void> {
  ports.console('HELPER_DEBUG: a root shell is on the fourth serial port (ttyS3); exit it to power off');
  await run('/bin/busybox', ['setsid', 'sh', '-c', 'exec /bin/sh </dev/ttyS3 >/dev/ttyS3 2>&1'], {
    allowFailure: true,
  });
}

/**
 * Flushes what the helper wrote to the instance disks: fsync of a block device writes its
 * cache and flushes the device's write cache (filesystems were unmounted by UmountImage).
 * No `sync` program: under software emulation each program started costs a few tenths of
 * a second.
 */
function flushDisks(disks: readonly string[]): void {
  for (const disk of disks) {
    try {
      const fd = openSync(disk, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch {
      // a disk that cannot be opened has nothing of ours to flush
    }
  }
}

/** Powers the VM off at once (SysRq o), with poweroff -f as the fallback. */
async function powerOff(): Promise<never> {
  try {
    writeFileSync('/proc/sysrq-trigger', 'o');
  } catch {
    await run('/bin/busybox', ['poweroff', '-f'], { allowFailure: true });
  }
  await new Promise((r) => setTimeout(r, 3000));
  await run('/bin/busybox', ['poweroff', '-f'], { allowFailure: true });
  process.exit(0);
}

export async function helperMain(): Promise<never> {
  const cmdline = existsSync('/proc/cmdline') ? readFileSync('/proc/cmdline', 'utf8') : '';
  if (!cmdline.split(/\s+/).includes('snf_image_activate_helper')) {
    process.stderr.write(
      'snf-image helper: runs only inside the helper VM (no snf_image_activate_helper on the kernel command line)\n',
    );
    process.exit(1);
  }
  const ports = openPorts();
  const log = (line: string) => ports.console(stamp(line));
  let ctx: HelperContext | undefined;
  let debug = false;
  log('snf-image helper started');
  try {
    const config = await readConfig();
    debug = config.debug;
    log(`config document read: operation ${config.operation}, ${config.disks.length} disk(s)`);
    const disks = config.disks.map((d) => findDiskBySerial(d.serial));
    ctx = {
      config,
      disk: disks[0] as string,
      disks,
      properties: { ...config.properties },
      target: TARGET,
      mounts: [],
      warn: (message) => {
        log(`WARNING: ${message}`);
        ports.event({ kind: 'warning', message });
      },
      info: (message) => log(message),
    };
    // As upstream's check_yes_no: an empty or unknown boolean property is warned about.
    for (const warning of flagWarnings(ctx.properties)) ctx.warn(warning);
    if (isYes(ctx.properties.EXCLUDE_ALL_TASKS)) {
      log('EXCLUDE_ALL_TASKS is set: no customization');
    } else {
      if (!ctx.properties.OSFAMILY || !ctx.properties.ROOT_PARTITION) {
        const found = await detectRoot(ctx.disk, '/run/snf-probe');
        ctx.properties.OSFAMILY ??= found.osFamily;
        ctx.properties.ROOT_PARTITION ??= String(found.rootPartition);
        ctx.warn(
          `image properties completed by detection: OSFAMILY=${ctx.properties.OSFAMILY} ROOT_PARTITION=${ctx.properties.ROOT_PARTITION}`,
        );
      }
      adapterFor(ctx.properties.OSFAMILY as OsFamily);
      await runTasks(ctx, { emit: (e) => ports.event(e), log, operation: config.operation });
    }
    flushDisks(ctx.disks);
    ports.result('SUCCESS');
    log('customization finished: SUCCESS');
  } catch (error) {
    const message = describeError(error);
    log(`ERROR: ${message}`);
    ports.event({ kind: 'error', message });
    ports.result(`ERROR: ${message}`);
    if (ctx && ctx.mounts.length > 0)
      await run('umount', ['--recursive', '--lazy', ctx.target], { allowFailure: true });
    await run('sync', [], { allowFailure: true });
    if (debug) await debugShell(ports);
  }
  // Closing a serial port waits until the UART has sent what was written to it (SUCCESS
  // included); a moment more for the console's last lines.
  ports.close();
  await new Promise((r) => setTimeout(r, 50));
  return powerOff();
}
