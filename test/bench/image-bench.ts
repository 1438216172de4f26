/**
 * Image deployment benchmark: `snf-image deploy --no-helper` (the create code path, the
 * built executable) against the standard tools, in one run, on a dirty loop device:
 *   raw    vs  dd bs=4M oflag=direct            and  qemu-img convert -n -t none -T none
 *   .zst   vs  zstd -dc | dd ...                 .xz vs xz -T0 -dc | dd ...
 *   .gz    vs  gzip -dc | dd ...                 .qcow2 vs qemu-img convert -f qcow2 -n -t none -T none
 *   http   vs  curl -s URL | dd ...              (from a 127.0.0.1 server in a child process)
 * Median of --runs (default 3), methods alternating; before each run the target is filled
 * with 0xFF and the page cache dropped (then our executable read back in). Prints times, ratios, our peak RSS and page-cache
 * growth, and checks every result with cmp. Needs root. Images: the test images
 * (scripts/test-images/build.sh), or --dir with debian-mbr.img{,.zst,.xz,.gz} and .qcow2.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureImageForm, ensureTestImages } from '../support/test-images.ts';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, dir: { type: 'string' }, only: { type: 'string' } },
});
const runs = Number(values.runs);
const BIN = resolve('dist/snf-image');
const dir = values.dir ?? ensureTestImages().dir;
const raw = join(dir, 'debian-mbr.img');
const size = statSync(raw).size;
for (const form of ['xz', 'gz'] as const) ensureImageForm(dir, 'debian-mbr.img', form);
const work = '/var/tmp/snf-image-bench';
mkdirSync(work, { recursive: true });
const backing = join(work, 'target');
execFileSync('truncate', ['-s', String(size), backing]);
const loop = execFileSync('losetup', ['--direct-io=on', '-f', '--show', backing]).toString().trim();
writeFileSync(
  join(work, 'snf-image.conf'),
  `IMAGE_DIR=${dir}\nVARIANTS_DIR=${work}\nIMAGE_CACHE=no\nWIPE_DISK_TAIL=yes\n`,
);

// The server runs in a process of its own: this one blocks in spawnSync while tools run.
const server = spawn(process.execPath, [join(import.meta.dirname, 'file-server.ts'), dir], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const port = await new Promise<string>((resolvePort, reject) => {
  server.stdout.once('data', (d: Buffer) => resolvePort(d.toString().trim()));
  server.once('exit', (code) => reject(new Error(`file server exited (${code})`)));
});
const base = `http://127.0.0.1:${port}`;

function cachedKiB(): number {
  return Number(/^Cached:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
}

function prepare(): void {
  execFileSync('sh', [
    '-c',
    `tr '\\000' '\\377' < /dev/zero | dd of=${loop} bs=4M count=${Math.ceil(size / (4 << 20))} iflag=fullblock oflag=direct status=none 2>/dev/null; true`,
  ]);
  execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
  // The executable itself (a 130 MB single binary) is cached like any program that runs;
  // read it now so that the page-cache growth measured is the image's, not the program's.
  execFileSync('sh', ['-c', `cat ${BIN} > /dev/null`]);
}

interface Sample {
  seconds: number;
  rssKiB?: number;
  cacheMiB: number;
}

async function timed(command: string): Promise<Sample> {
  prepare();
  const before = cachedKiB();
  const started = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', `${command}; sync`], {
    encoding: 'utf8',
    env: { ...process.env, SNF_IMAGE_CONFIG: join(work, 'snf-image.conf') },
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`${command} failed: ${r.stderr.slice(-500)}`);
  const rss = /^RSS_KIB=(\d+)$/m.exec(r.stderr)?.[1];
  // Page cache measured before cmp, which reads both sides through the cache itself.
  const cacheMiB = Math.max(0, cachedKiB() - before) / 1024;
  execFileSync('cmp', ['-n', String(size), raw, loop]);
  return { seconds, cacheMiB, ...(rss ? { rssKiB: Number(rss) } : {}) };
}

const curl = 'curl -sSf';
const dd = `dd of=${loop} bs=4M iflag=fullblock oflag=direct status=none`;
const ours = (id: string, format = 'diskdump') =>
  `/usr/bin/time -f RSS_KIB=%M ${BIN} deploy --no-helper --no-progress --disk ${loop} --img-id ${id} --img-format ${format} 2>&1 >/dev/null | grep RSS_KIB >&2`;

const cases: Array<{ name: string; ours: string; peers: Array<[string, string]>; target?: Record<string, number> }> = [
  {
    name: 'raw',
    ours: ours('debian-mbr.img'),
    peers: [
      ['dd oflag=direct', `dd if=${raw} ${dd.slice(3)}`],
      ['qemu-img convert', `qemu-img convert -f raw -O raw -t none -T none -n ${raw} ${loop}`],
    ],
    target: { 'dd oflag=direct': 0.5, 'qemu-img convert': 1.0 },
  },
  {
    name: 'zstd',
    ours: ours('debian-mbr.img.zst'),
    peers: [['zstd -dc | dd', `zstd -dc ${raw}.zst | ${dd}`]],
    target: { 'zstd -dc | dd': 0.8 },
  },
  {
    name: 'xz',
    ours: ours('debian-mbr.img.xz'),
    peers: [['xz -T0 -dc | dd', `xz -T0 -dc ${raw}.xz | ${dd}`]],
    target: { 'xz -T0 -dc | dd': 1.0 },
  },
  {
    name: 'gzip',
    ours: ours('debian-mbr.img.gz'),
    peers: [['gzip -dc | dd', `gzip -dc ${raw}.gz | ${dd}`]],
    target: { 'gzip -dc | dd': 1.0 },
  },
  {
    name: 'qcow2',
    ours: ours('debian-mbr.qcow2', 'qcow2'),
    peers: [
      [
        'qemu-img convert',
        `qemu-img convert -f qcow2 -O raw -t none -T none -n ${join(dir, 'debian-mbr.qcow2')} ${loop}`,
      ],
    ],
    target: { 'qemu-img convert': 1.1 },
  },
  {
    name: 'http',
    ours: ours(`${base}/debian-mbr.img`),
    peers: [['curl | dd', `${curl} ${base}/debian-mbr.img | ${dd}`]],
    target: { 'curl | dd': 1.0 },
  },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const lines: string[] = [];
let allMet = true;
let memoryMet = true;
// Memory targets: our peak RSS (the decompressor programs' own memory is the same as the
// peers' and not counted), and page-cache growth, system-wide: other activity on the
// machine during a run shows up here too.
const RSS_TARGET_MB = 150;
const CACHE_TARGET_PERCENT = 5;
try {
  for (const c of cases.filter((c) => !values.only || values.only.split(',').includes(c.name))) {
    const samples = new Map<string, Sample[]>([['ours', []], ...c.peers.map(([n]) => [n, []] as [string, Sample[]])]);
    for (let i = 0; i < runs; i++) {
      const order: Array<[string, string]> = [['ours', c.ours], ...c.peers];
      for (let k = 0; k < i % order.length; k++) order.push(order.shift() as [string, string]);
      for (const [name, command] of order) samples.get(name)?.push(await timed(command));
    }
    const oursTime = median((samples.get('ours') ?? []).map((s) => s.seconds));
    const rss = Math.max(...(samples.get('ours') ?? []).map((s) => s.rssKiB ?? 0)) / 1024;
    const cache = median((samples.get('ours') ?? []).map((s) => s.cacheMiB));
    const cachePercent = (cache * 1048576 * 100) / size;
    const rssMet = rss <= RSS_TARGET_MB;
    const cacheMet = cachePercent < CACHE_TARGET_PERCENT;
    memoryMet &&= rssMet && cacheMet;
    lines.push(
      `${c.name.padEnd(6)} ours ${oursTime.toFixed(2)} s  peak RSS ${rss.toFixed(0)} MB (<= ${RSS_TARGET_MB}: ${rssMet ? 'met' : 'NOT met'})  page cache +${cache.toFixed(0)} MiB (${cachePercent.toFixed(1)} % of the image; < ${CACHE_TARGET_PERCENT} %: ${cacheMet ? 'met' : 'NOT met'})`,
    );
    for (const [name] of c.peers) {
      const peer = median((samples.get(name) ?? []).map((s) => s.seconds));
      const ratio = oursTime / peer;
      const goal = c.target?.[name];
      const met = goal === undefined || ratio <= goal;
      allMet &&= met;
      lines.push(
        `       vs ${name.padEnd(18)} ${peer.toFixed(2)} s  ratio ${ratio.toFixed(2)}${goal !== undefined ? `  (target <= ${goal}: ${met ? 'met' : 'NOT met'})` : ''}`,
      );
    }
    console.log(lines.slice(-1 - c.peers.length).join('\n'));
  }
} finally {
  server.kill();
  execFileSync('losetup', ['-d', loop]);
}
console.log(
  `\nimage benchmark (median of ${runs}, ${(size / 1048576).toFixed(0)} MiB image, every result cmp-equal):\n${lines.join('\n')}`,
);
console.log(allMet ? 'all time targets met' : 'some time targets NOT met');
console.log(memoryMet ? 'all memory targets met' : 'some memory targets NOT met');
