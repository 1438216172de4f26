/**
 * Image writer benchmark: src/disk/image-writer.ts against `dd bs=4M oflag=direct` and
 * `qemu-img convert -t none -T none -n`, writing a raw image onto a loop device over a
 * file pre-filled with 0xFF garbage (like an LV that held another instance).
 *
 *   node test/bench/writer-bench.ts [--image PATH] [--runs 3] [--dir DIR] [--size 1536M]
 *        [--methods dd,qemu-img,ours] [--loop-direct-io on|off] [--no-cmp] [--no-bundle]
 *        [--source stream,file] [--block-size 4M] [--zero-block-size 64K] [--in-flight 3]
 *        [--read-size 8M] [--min-zero-run 0] [--min-hole 1M] [--threads 4]
 *
 * Ours comes in two sources: `stream` = fs.createReadStream with a big highWaterMark
 * (--read-size) and posix_fadvise(DONTNEED) behind the read position; `file` =
 * readImageFile (O_DIRECT reads, holes skipped with SEEK_DATA/SEEK_HOLE). The tuning flags
 * take comma-separated values; every combination is run as its own variant. Ours runs as
 * an esbuild bundle in a fresh process (like the shipped executable; --no-bundle: source).
 *
 * Without --image a synthetic sparse image is built: random data extents of 4 KiB..1 MiB
 * covering 20 % of it, zeroes (holes) elsewhere. Before every run: the target is refilled
 * with 0xFF, then `sync; echo 3 > /proc/sys/vm/drop_caches`. Each run is timed until the
 * command has exited and `sync` has returned; its result is checked with `cmp`. Methods
 * alternate (rotating order); the median of the runs is reported, with the growth of
 * `Cached` in /proc/meminfo (system-wide, so other activity shows too) and the page-cache
 * pages of the image and the target's backing file afterwards (fincore). Needs root.
 *
 * Internal mode (one run of ours, in a fresh process like dd and qemu-img):
 *   node test/bench/writer-bench.ts --write-one IMG TARGET [--block-size ..] ...
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import {
  closeSync,
  constants,
  createReadStream,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readImageFile } from '../../src/disk/image-file-reader.ts';
import { writeImage } from '../../src/disk/image-writer.ts';
import { directIo } from '../../src/disk/native.ts';

const MiB = 1024 * 1024;

function parseSize(text: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(text.trim());
  if (m === null) throw new Error(`bad size ${text}`);
  const unit = (m[2] ?? '').toUpperCase();
  const factor = unit === 'K' ? 1024 : unit === 'M' ? MiB : unit === 'G' ? 1024 * MiB : 1;
  return Number(m[1]) * factor;
}

const { values } = parseArgs({
  options: {
    image: { type: 'string' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string' },
    size: { type: 'string', default: '1536M' },
    'block-size': { type: 'string', default: '4M' },
    'zero-block-size': { type: 'string', default: '64K' },
    'in-flight': { type: 'string', default: '3' },
    'min-zero-run': { type: 'string', default: '0' },
    threads: { type: 'string', default: '4' },
    'min-hole': { type: 'string', default: '1M' },
    'read-size': { type: 'string', default: '8M' },
    source: { type: 'string', default: 'stream,file' },
    'loop-direct-io': { type: 'string', default: 'on' },
    methods: { type: 'string', default: 'dd,qemu-img,ours' },
    'write-one': { type: 'boolean', default: false },
    'no-cmp': { type: 'boolean', default: false },
    'no-bundle': { type: 'boolean', default: false },
  },
  allowPositionals: true,
});

// ---- ours (the --write-one child) ------------------------------------------------------

/** The source as a read stream with a big highWaterMark, dropping cached pages behind it. */
async function* readSource(path: string, readSize: number): AsyncGenerator<Uint8Array> {
  const io = directIo();
  // posix_fadvise acts on the file's page cache through any descriptor of it.
  const adviceFd = openSync(path, constants.O_RDONLY);
  const stream = createReadStream(path, { highWaterMark: readSize });
  let position = 0;
  let dropped = 0;
  try {
    for await (const chunk of stream) {
      const data = chunk as Buffer;
      position += data.length;
      yield data;
      if (position - dropped >= 64 * MiB) {
        io.dropCache(adviceFd, dropped, position - dropped);
        dropped = position;
      }
    }
    io.dropCache(adviceFd, dropped, Math.max(0, position - dropped));
  } finally {
    stream.destroy();
    closeSync(adviceFd);
  }
}

async function writeOne(image: string, targetPath: string): Promise<void> {
  const st = statSync(targetPath);
  const started = process.hrtime.bigint();
  const readSize = parseSize(values['read-size'].split(',')[0] ?? '8M');
  const source =
    values.source.split(',')[0] === 'file'
      ? readImageFile(image, { chunkSize: readSize, minHole: parseSize(values['min-hole'].split(',')[0] ?? '1M') })
      : readSource(image, readSize);
  const result = await writeImage(
    source,
    {
      path: targetPath,
      kind: st.isBlockDevice() ? 'block' : 'file',
      sizeBytes: st.isBlockDevice() ? directIoSize(targetPath) : st.size,
    },
    {
      blockSize: parseSize(values['block-size'].split(',')[0] ?? '4M'),
      zeroBlockSize: parseSize(values['zero-block-size'].split(',')[0] ?? '64K'),
      inFlight: Number(values['in-flight'].split(',')[0] ?? '3'),
      minZeroRun: parseSize(values['min-zero-run'].split(',')[0] ?? '0'),
    },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({ ...result, seconds }));
}

function directIoSize(path: string): number {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    return directIo().blockDeviceSize(fd);
  } finally {
    closeSync(fd);
  }
}

// ---- harness -------------------------------------------------------------------------

function run(command: string, args: string[], quiet = false, env?: Record<string, string>): string {
  const r = spawnSync(command, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')}: exit ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  if (!quiet && r.stderr.trim() !== '') process.stderr.write(r.stderr);
  return r.stdout;
}

function cachedKiB(): number {
  const m = /^Cached:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m === null ? NaN : Number(m[1]);
}

/** Page-cache pages of these files (fincore), in MiB. */
function residentMiB(paths: string[]): number {
  const out = run('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', ...paths], true);
  return (
    out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .reduce((sum, l) => sum + Number(l.trim()), 0) / MiB
  );
}

function dropCaches(): void {
  run('sync', []);
  run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
}

/** Deterministic PRNG (mulberry32) so the synthetic layout is the same each time. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A sparse raw image: random 4 KiB..1 MiB data extents covering `dataShare` of it. */
function buildSynthetic(path: string, size: number, dataShare = 0.2): { dataBytes: number } {
  rmSync(path, { force: true });
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  const random = prng(20261121);
  const page = 4096;
  const maxExtent = MiB;
  const meanExtent = (page + maxExtent) / 2;
  const meanGap = (meanExtent * (1 - dataShare)) / dataShare;
  const buffer = Buffer.allocUnsafe(maxExtent);
  let position = 0;
  let dataBytes = 0;
  while (true) {
    position += Math.floor((random() * 2 * meanGap) / page) * page;
    const length = Math.min(page * (1 + Math.floor((random() * (maxExtent - page)) / page)), size - position);
    if (length <= 0) break;
    randomFillSync(buffer, 0, length);
    for (let done = 0; done < length; ) done += writeSync(fd, buffer, done, length - done, position + done);
    dataBytes += length;
    position += length;
  }
  closeSync(fd);
  return { dataBytes };
}

/** Overwrites [0, size) of `path` with 0xFF through O_DIRECT. */
function fillGarbage(path: string, size: number): void {
  const io = directIo();
  const block = 4 * MiB;
  const buffer = new Uint8Array(io.allocAligned(block, 4096)).fill(0xff);
  const fd = openSync(path, constants.O_WRONLY | constants.O_DIRECT);
  try {
    for (let position = 0; position < size; position += block) {
      const n = Math.min(block, size - position);
      writeSync(fd, buffer, 0, n, position);
    }
  } finally {
    closeSync(fd);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

interface Method {
  name: string;
  env?: Record<string, string>;
  command: (image: string, target: string) => [string, string[]];
}

async function main(): Promise<void> {
  if (values['write-one']) {
    const [image, target] = process.argv
      .slice(process.argv.indexOf('--write-one') + 1)
      .filter((a) => !a.startsWith('--'));
    if (image === undefined || target === undefined) throw new Error('--write-one IMAGE TARGET');
    await writeOne(image, target);
    return;
  }
  if (process.getuid?.() !== 0) {
    console.error('writer-bench: needs root (losetup, /proc/sys/vm/drop_caches)');
    process.exit(2);
  }
  const runs = Number(values.runs);
  const dir = values.dir ?? join(tmpdir(), 'snf-writer-bench');
  mkdirSync(dir, { recursive: true });
  let image = values.image;
  if (image === undefined) {
    image = join(dir, 'synthetic.img');
    const size = parseSize(values.size);
    const t0 = Date.now();
    const { dataBytes } = buildSynthetic(image, size);
    console.log(
      `synthetic image ${image}: ${size} bytes, data extents ${(dataBytes / MiB).toFixed(0)} MiB (${((100 * dataBytes) / size).toFixed(1)} %), built in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  const imageSize = statSync(image).size;
  const allocated = statSync(image).blocks * 512;
  console.log(`image ${image}: ${imageSize} bytes, allocated ${(allocated / MiB).toFixed(0)} MiB`);

  const backing = join(dir, 'target.raw');
  rmSync(backing, { force: true });
  const targetSize = Math.ceil(imageSize / MiB) * MiB;
  const bfd = openSync(backing, 'w');
  ftruncateSync(bfd, targetSize);
  closeSync(bfd);
  fillGarbage(backing, targetSize);
  const loop = run('losetup', ['-f', '--show', `--direct-io=${values['loop-direct-io']}`, backing]).trim();
  console.log(
    `target ${loop} over ${backing} (${targetSize} bytes, 0xFF garbage, loop direct-io ${values['loop-direct-io']})`,
  );

  // Ours runs as one bundled file, like the shipped single executable (no TypeScript
  // stripping or module resolution at start-up); --no-bundle runs it from source.
  let self = join(import.meta.dirname, 'writer-bench.ts');
  if (!values['no-bundle']) {
    const { build } = await import('esbuild');
    const bundled = join(dir, 'writer-bench.mjs');
    await build({
      entryPoints: [self],
      outfile: bundled,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      external: ['esbuild'],
      define: { 'import.meta.dirname': JSON.stringify(join(import.meta.dirname, '..', '..', 'src', 'disk')) },
      logLevel: 'warning',
    });
    self = bundled;
  }
  // Every combination of the comma-separated values of the tuning flags is one variant.
  const knobs = [
    'source',
    'block-size',
    'zero-block-size',
    'in-flight',
    'read-size',
    'min-zero-run',
    'min-hole',
    'threads',
  ] as const;
  let combos: Array<Array<[string, string]>> = [[]];
  for (const knob of knobs) {
    combos = combos.flatMap((combo) =>
      values[knob].split(',').map((v): Array<[string, string]> => [...combo, [knob, v]]),
    );
  }
  const varying = knobs.filter((knob) => knob !== 'source' && values[knob].includes(','));
  const ourVariants: Method[] = combos.map((combo) => {
    const get = (knob: string) => combo.find(([k]) => k === knob)?.[1] ?? '';
    const name = `ours-${get('source')}${varying.map((k) => ` ${k}=${get(k)}`).join('')}`;
    const args = combo.filter(([k]) => k !== 'threads').flatMap(([k, v]) => [`--${k}`, v]);
    return {
      name,
      env: { UV_THREADPOOL_SIZE: get('threads') },
      command: (img, target) => [process.execPath, [self, '--write-one', img, target, ...args]],
    };
  });
  const all: Method[] = [
    {
      name: 'dd',
      command: (img, target) => ['dd', [`if=${img}`, `of=${target}`, 'bs=4M', 'oflag=direct', 'status=none']],
    },
    {
      name: 'qemu-img',
      command: (img, target) => [
        'qemu-img',
        ['convert', '-f', 'raw', '-O', 'raw', '-t', 'none', '-T', 'none', '-n', img, target],
      ],
    },
  ];
  const wanted = values.methods.split(',');
  const methods = [...all.filter((m) => wanted.includes(m.name)), ...(wanted.includes('ours') ? ourVariants : [])];
  const times = new Map<string, number[]>();
  const cacheGrowth = new Map<string, number[]>();
  const resident = new Map<string, number[]>();

  try {
    for (let r = 1; r <= runs; r++) {
      // Rotated each round, so no method always runs right after the same other one.
      for (const method of [
        ...methods.slice((r - 1) % methods.length),
        ...methods.slice(0, (r - 1) % methods.length),
      ]) {
        fillGarbage(loop, targetSize);
        dropCaches();
        const before = cachedKiB();
        const [command, args] = method.command(image, loop);
        const t0 = process.hrtime.bigint();
        const out = run(command, args, false, method.env);
        run('sync', []);
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const growth = (cachedKiB() - before) / 1024;
        const filesCached = residentMiB([image, backing]);
        let check = 'not checked';
        if (!values['no-cmp']) {
          const c = spawnSync('cmp', ['-n', String(imageSize), image, loop], { encoding: 'utf8' });
          check = c.status === 0 ? 'cmp equal' : `CMP DIFFERS: ${c.stdout.trim()} ${c.stderr.trim()}`;
          if (c.status !== 0) process.exitCode = 1;
        }
        const inner = method.name.startsWith('ours') ? ` ${out.trim()}` : '';
        console.log(
          `run ${r} ${method.name.padEnd(12)} ${seconds.toFixed(3)} s  Cached +${growth.toFixed(0)} MiB (image+backing resident ${filesCached.toFixed(0)} MiB)  ${check}${inner}`,
        );
        times.set(method.name, [...(times.get(method.name) ?? []), seconds]);
        resident.set(method.name, [...(resident.get(method.name) ?? []), filesCached]);
        cacheGrowth.set(method.name, [...(cacheGrowth.get(method.name) ?? []), growth]);
      }
    }
  } finally {
    run('losetup', ['-d', loop]);
    rmSync(backing, { force: true });
  }

  console.log(`\nmedian of ${runs} (${(imageSize / MiB).toFixed(0)} MiB image, time until exit + sync):`);
  const dd = times.has('dd') ? median(times.get('dd') ?? []) : NaN;
  const qemu = times.has('qemu-img') ? median(times.get('qemu-img') ?? []) : NaN;
  for (const method of methods) {
    const t = median(times.get(method.name) ?? []);
    const g = median(cacheGrowth.get(method.name) ?? []);
    const f = median(resident.get(method.name) ?? []);
    const ratios = method.name.startsWith('ours')
      ? `  ours/dd ${(t / dd).toFixed(2)}  ours/qemu-img ${(t / qemu).toFixed(2)}`
      : '';
    console.log(
      `  ${method.name.padEnd(34)} ${t.toFixed(3)} s  ${(imageSize / t / 1e6).toFixed(0)} MB/s  Cached +${g.toFixed(0)} MiB  files ${f.toFixed(0)} MiB${ratios}`,
    );
  }
}

await main();
