/**
 * Customization benchmark: on the same Debian test image, in the same run, virt-customize
 * (libguestfs) setting the root password and the hostname, injecting an SSH key and
 * removing the SSH host keys, against the snf-image helper VM doing the full Linux
 * customization of `snf-image deploy` (partition and filesystem growth, mounts, hostname,
 * machine id, password, key, new host keys, network). Median of --runs (default 3) after
 * one warm-up of each (libguestfs builds its appliance then). Prints both, the helper's
 * per-task times and the ratio helper / virt-customize (target <= 0.25).
 *
 * Needs root and libguestfs-tools (apt-get install libguestfs-tools); without
 * virt-customize it says so and exits 0 (run.ts runs it only with --customize). Under TCG
 * libguestfs gets LIBGUESTFS_BACKEND_SETTINGS=force_tcg. A host without /boot/vmlinuz-*
 * (a container) gives supermin the helper build's cached Debian kernel package.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BINARY } from '../support/binary.ts';
import { ensureHelper } from '../support/helper-image.ts';
import { ensureTestImages } from '../support/test-images.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);
if (spawnSync('sh', ['-c', 'command -v virt-customize']).status !== 0) {
  console.log('customize benchmark skipped: virt-customize is not installed (apt-get install libguestfs-tools)');
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.log('customize benchmark skipped: needs root');
  process.exit(0);
}

const work = '/var/tmp/snf-image-customize-bench';
mkdirSync(work, { recursive: true });
const images = ensureTestImages();
const image = images.images['debian-mbr'];
const imagePath = join(images.dir, image.files.raw);
const helperDir = ensureHelper();
const accel = (() => {
  try {
    return (JSON.parse(readFileSync(join(helperDir, 'accel-probe.json'), 'utf8')) as { accel?: string }).accel ?? 'tcg';
  } catch {
    return 'tcg';
  }
})();

/** supermin's kernel: the host's, else the Debian kernel package the helper build cached. */
function superminKernel(): Record<string, string> {
  if (existsSync('/boot') && readdirSync('/boot').some((f) => f.startsWith('vmlinuz-'))) return {};
  const kernelDir = join(work, 'kernel');
  if (!existsSync(join(kernelDir, 'boot'))) {
    const root = '/var/cache/snf-image-build';
    const deb = readdirSync(root)
      .filter((d) => existsSync(join(root, d, 'rootfs.tar')))
      .flatMap((d) =>
        readdirSync(join(root, d))
          .filter((f) => /^linux-image-.*\.deb$/.test(f))
          .map((f) => join(root, d, f)),
      )[0];
    if (!deb) throw new Error('no /boot/vmlinuz-* and no cached helper kernel package: build the helper first');
    execFileSync('dpkg-deb', ['-x', deb, kernelDir]);
  }
  const version = readdirSync(join(kernelDir, 'lib/modules'))[0] as string;
  if (!existsSync(join(kernelDir, 'lib/modules', version, 'modules.dep')))
    execFileSync('depmod', ['-b', kernelDir, version]);
  // supermin lstat()s /lib/modules while copying the modules even when SUPERMIN_MODULES points elsewhere.
  mkdirSync('/lib/modules', { recursive: true });
  return {
    SUPERMIN_KERNEL: join(kernelDir, 'boot', `vmlinuz-${version}`),
    SUPERMIN_MODULES: join(kernelDir, 'lib/modules', version),
  };
}

const key = execFileSync('sh', [
  '-c',
  `rm -f ${work}/key ${work}/key.pub && ssh-keygen -q -t ed25519 -N '' -C bench -f ${work}/key && cat ${work}/key.pub`,
])
  .toString()
  .trim();
writeFileSync(join(work, 'authorized_keys'), `${key}\n`);
writeFileSync(join(work, 'passwd'), 'Bench-pw-2026', { mode: 0o600 });

const guestfsEnv = {
  ...process.env,
  LIBGUESTFS_BACKEND: 'direct',
  ...(accel === 'kvm' ? {} : { LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' }),
  ...superminKernel(),
};

function virtCustomize(): number {
  const copy = join(work, 'vc.img');
  execFileSync('cp', ['--sparse=always', imagePath, copy]);
  const started = process.hrtime.bigint();
  const r = spawnSync(
    'virt-customize',
    [
      '-q',
      '--format',
      'raw',
      '-a',
      copy,
      '--no-network',
      '--root-password',
      `file:${join(work, 'passwd')}`,
      '--hostname',
      'bench-vm.example.org',
      '--ssh-inject',
      `root:file:${join(work, 'authorized_keys')}`,
      '--delete',
      '/etc/ssh/ssh_host_*',
    ],
    { env: guestfsEnv, encoding: 'utf8' },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  rmSync(copy, { force: true });
  if (r.status !== 0) throw new Error(`virt-customize failed: ${(r.stderr || r.stdout).slice(-800)}`);
  return seconds;
}

interface HelperRun {
  vm: number;
  total: number;
  tasks: Map<string, number>;
}

const node = join(work, 'node');
mkdirSync(join(node, 'variants'), { recursive: true });
writeFileSync(join(node, 'variants', 'default.conf'), '');
writeFileSync(
  join(node, 'snf-image.conf'),
  `HELPER_DIR=${helperDir}\nVARIANTS_DIR=${join(node, 'variants')}\nIMAGE_DIR=${images.dir}\nHELPER_SOFT_TIMEOUT=900\n`,
);

function snfDeploy(): HelperRun {
  const disk = join(work, 'disk0');
  rmSync(disk, { force: true });
  execFileSync('truncate', ['-s', `${image.size + 512 * 1048576}`, disk]);
  const started = process.hrtime.bigint();
  const r = spawnSync(
    BINARY,
    [
      'deploy',
      '--disk',
      disk,
      '--img-id',
      image.files.raw,
      '--img-format',
      'diskdump',
      '--hostname',
      'bench-vm.example.org',
      '--passwd-file',
      join(work, 'passwd'),
      '--auth-keys-file',
      join(work, 'authorized_keys'),
      '--no-progress',
    ],
    { env: { ...process.env, SNF_IMAGE_CONFIG: join(node, 'snf-image.conf') }, encoding: 'utf8' },
  );
  const total = Number(process.hrtime.bigint() - started) / 1e9;
  rmSync(disk, { force: true });
  if (r.status !== 0) throw new Error(`snf-image deploy failed: ${r.stderr.slice(-800)}`);
  const vm = Number(/helper VM finished: SUCCESS seconds=([\d.]+)/.exec(r.stderr)?.[1]);
  const tasks = new Map<string, number>();
  for (const m of r.stderr.matchAll(/task (\w+) finished in ([\d.]+) s/g)) tasks.set(m[1] as string, Number(m[2]));
  return { vm, total, tasks };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
virtCustomize(); // warm-up: supermin builds the appliance
snfDeploy();
const vc: number[] = [];
const snf: HelperRun[] = [];
for (let i = 0; i < runs; i++) {
  vc.push(virtCustomize());
  snf.push(snfDeploy());
}
const vcMedian = median(vc);
const vmMedian = median(snf.map((s) => s.vm));
console.log(
  `customization benchmark (${accel.toUpperCase()}, ${image.partition_table} Debian test image, ${(image.size / 1073741824).toFixed(1)} GiB, median of ${runs}):`,
);
console.log(
  `  virt-customize (password, hostname, ssh key, host keys removed): ${vcMedian.toFixed(2)} s  [${vc.map((v) => v.toFixed(2)).join(' ')}]`,
);
console.log(
  `  snf-image helper VM, full Linux customization, spawn to exit:  ${vmMedian.toFixed(2)} s  [${snf.map((s) => s.vm.toFixed(2)).join(' ')}]`,
);
console.log(`  whole snf-image deploy (image write + helper): ${median(snf.map((s) => s.total)).toFixed(2)} s`);
const names = [...new Set(snf.flatMap((s) => [...s.tasks.keys()]))];
for (const name of names)
  console.log(`    ${name.padEnd(26)} ${median(snf.map((s) => s.tasks.get(name) ?? 0)).toFixed(2)} s`);
console.log(`  ratio helper / virt-customize: ${(vmMedian / vcMedian).toFixed(2)} (target <= 0.25)`);
