/**
 * Helper VM boot benchmark: a no-op helper run (create with img_id=null and every task
 * excluded, so the helper boots, reads its config floppy, writes SUCCESS and powers off)
 * next to the floor: the same QEMU and kernel (the PVH vmlinux under TCG, as the helper) booting a busybox-only initramfs that just
 * writes a marker to ttyS1 and powers off (helper/build/build-floor.sh). Median of --runs
 * (default 5). Prints both, the ratio, and the host-side overhead of a helper run
 * (floppy, launch, teardown: create's time outside the VM). Needs root.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { helperFiles } from '../../src/helper-vm/helper-files.ts';
import { bootKernel } from '../../src/helper-vm/qemu-command.ts';
import { ensureHelper } from '../support/helper-image.ts';
import { runScript } from '../support/binary.ts';
import { makeSyntheticGuest } from '../support/synthetic-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const helperDir = ensureHelper();
const work = '/var/tmp/snf-image-helper-bench';
mkdirSync(work, { recursive: true });
const floor = join(work, 'floor.cpio');
if (!existsSync(floor))
  execFileSync('bash', [resolve('helper/build/build-floor.sh'), '--out', floor], { stdio: 'inherit' });
const probe = (() => {
  try {
    return JSON.parse(readFileSync(join(helperDir, 'accel-probe.json'), 'utf8')) as { accel?: string };
  } catch {
    return {};
  }
})();

async function floorRun(accel: string): Promise<number> {
  const s1 = join(work, 's1');
  rmSync(s1, { force: true });
  const started = process.hrtime.bigint();
  const child = spawn(
    'qemu-system-x86_64',
    [
      '-accel',
      accel,
      '-machine',
      'pc',
      '-cpu',
      accel === 'kvm' ? 'host' : 'max',
      '-nodefaults',
      '-no-user-config',
      '-nographic',
      '-no-reboot',
      '-m',
      '512',
      '-smp',
      '1',
      '-kernel',
      bootKernel({ accel: accel === 'kvm' ? 'kvm' : 'tcg', helper: helperFiles(helperDir) }),
      '-initrd',
      floor,
      '-append',
      'console=ttyS0 quiet loglevel=3 panic=-1',
      '-serial',
      `file:${join(work, 's0')}`,
      '-serial',
      `file:${s1}`,
    ],
    { stdio: 'ignore' },
  );
  await new Promise<void>((r) => child.once('exit', () => r()));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (!readFileSync(s1, 'utf8').includes('FLOOR-OK')) throw new Error('the floor VM did not write its marker');
  return seconds;
}

const dir = join(work, 'node');
mkdirSync(join(dir, 'variants'), { recursive: true });
writeFileSync(join(dir, 'variants', 'default.conf'), '');
writeFileSync(
  join(dir, 'snf-image.conf'),
  `HELPER_DIR=${helperDir}\nVARIANTS_DIR=${join(dir, 'variants')}\nIMAGE_DIR=${dir}\nHELPER_SOFT_TIMEOUT=600\n`,
);
const disk = join(dir, 'disk0');
makeSyntheticGuest(disk);
const props = JSON.stringify({
  OSFAMILY: 'linux',
  ROOT_PARTITION: '1',
  EXCLUDE_MOUNTED_TASKS: 'yes',
  EXCLUDE_TASK_FixPartitionTable: 'yes',
  EXCLUDE_FILESYSTEMRESIZE_TASKS: 'yes',
});

async function helperRun(): Promise<{ vm: number; total: number; accel: string }> {
  const started = process.hrtime.bigint();
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      DISK_0_PATH: disk,
      OSP_IMG_ID: 'null',
      OSP_IMG_PROPERTIES: props,
      SNF_IMAGE_CONFIG: join(dir, 'snf-image.conf'),
    },
  });
  const total = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.code !== 0) throw new Error(`no-op helper run failed: ${r.stderr.slice(-800)}`);
  const vm = Number(/helper VM finished: SUCCESS seconds=([\d.]+)/.exec(r.stderr)?.[1]);
  const accel = /starting the helper VM accel=(\w+)/.exec(r.stderr)?.[1] ?? '?';
  return { vm, total, accel };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
await helperRun(); // warm-up: the accelerator probe runs once and is cached
const accel = probe.accel ?? JSON.parse(readFileSync(join(helperDir, 'accel-probe.json'), 'utf8')).accel;
const floors: number[] = [];
const helpers: Array<{ vm: number; total: number }> = [];
for (let i = 0; i < runs; i++) {
  floors.push(await floorRun(accel));
  helpers.push(await helperRun());
}
const floorMedian = median(floors);
const vmMedian = median(helpers.map((h) => h.vm));
const totalMedian = median(helpers.map((h) => h.total));
const overhead = median(helpers.map((h) => h.total - h.vm));
console.log(`helper VM benchmark (${accel.toUpperCase()}, median of ${runs}):`);
console.log(
  `  floor (same kernel, busybox initramfs, marker on ttyS1): ${floorMedian.toFixed(2)} s  [${floors.map((f) => f.toFixed(2)).join(' ')}]`,
);
console.log(
  `  no-op helper, QEMU spawn to exit after SUCCESS:         ${vmMedian.toFixed(2)} s  [${helpers.map((h) => h.vm.toFixed(2)).join(' ')}]`,
);
console.log(`  ratio helper / floor: ${(vmMedian / floorMedian).toFixed(2)} (target <= 1.5)`);
console.log(
  `  whole create (no image): ${totalMedian.toFixed(2)} s; host-side overhead (process start, config, floppy, launch, teardown): ${overhead.toFixed(2)} s (target <= 0.3)`,
);
