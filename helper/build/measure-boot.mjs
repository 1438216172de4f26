#!/usr/bin/env node
// Boot-time benchmark for the snf-image helper VM (and the "floor").
//
//   node measure-boot.mjs --helper DIR [--floppy IMG] [options]
//   node measure-boot.mjs --kernel K --initrd I [--root IMG] [--floppy IMG] [options]
//
// Options:
//   --runs N          runs (default 5); medians are reported
//   --marker TEXT     text awaited on ttyS1 (default SUCCESS)
//   --append STR      replaces the extra kernel parameters (see DEFAULT_EXTRA)
//   --add STR         appended to the kernel parameters
//   --accel A         tcg (default) or kvm
//   --mem MB          guest memory (default 512)
//   --runas USER      add "-runas USER"
//   --no-sandbox      drop the -sandbox option
//   --qemu-arg ARG    extra QEMU argument (repeatable)
//   --nice N          run QEMU under nice -n N (e.g. -20 as root, to shield the
//                     measurement from other load on the machine)
//   --timeout S       per-run timeout (default 120)
//   --keep DIR        keep the serial logs of every run in DIR
//   --floor CPIO      also boot the floor initramfs (build-floor.sh) with the
//                     same kernel, kernel parameters and QEMU flags but no
//                     disks, alternating with the measured VM run by run (so
//                     host load affects both alike), and report the ratio
//   --floor-marker T  marker of the floor initramfs (default FLOOR-OK)
//   --json            print one JSON object instead of a table
//
// Times are measured from spawn() to (a) the marker appearing in the ttyS1
// file (polled every 2 ms) and (b) QEMU's exit.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Kernel parameters besides console=ttyS0 (see README.md). Not loglevel=0:
// it would hide panics and the "reboot: Power down" line (guest uptime).
export const DEFAULT_EXTRA =
  'quiet panic=-1 tsc=reliable no_timer_check i8042.noaux i8042.nokbd i8042.nopnp 8250.nr_uarts=4';

function parseArgs(argv) {
  const o = { runs: 5, marker: 'SUCCESS', accel: 'tcg', mem: 512, timeout: 120,
    qemuArgs: [], sandbox: true, extra: DEFAULT_EXTRA, add: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    switch (a) {
      case '--helper': o.helper = v(); break;
      case '--kernel': o.kernel = v(); break;
      case '--initrd': o.initrd = v(); break;
      case '--root': o.root = v(); break;
      case '--floppy': o.floppy = v(); break;
      case '--runs': o.runs = Number(v()); break;
      case '--marker': o.marker = v(); break;
      case '--append': o.extra = v(); break;
      case '--add': o.add = v(); break;
      case '--accel': o.accel = v(); break;
      case '--mem': o.mem = Number(v()); break;
      case '--runas': o.runas = v(); break;
      case '--no-sandbox': o.sandbox = false; break;
      case '--qemu-arg': o.qemuArgs.push(v()); break;
      case '--timeout': o.timeout = Number(v()); break;
      case '--nice': o.nice = Number(v()); break;
      case '--keep': o.keep = v(); break;
      case '--floor': o.floor = v(); break;
      case '--floor-marker': o.floorMarker = v(); break;
      case '--json': o.json = true; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (o.helper) {
    o.kernel ??= path.join(o.helper, 'kernel');
    o.initrd ??= path.join(o.helper, 'initrd');
    o.root ??= path.join(o.helper, 'root.img');
  }
  if (!o.kernel || !o.initrd) throw new Error('need --helper DIR or --kernel and --initrd');
  return o;
}

export function qemuArgs(o, dir) {
  const args = [
    '-accel', o.accel, '-machine', 'pc', '-nodefaults', '-no-user-config', '-nographic',
    '-m', String(o.mem), '-no-reboot',
  ];
  if (o.sandbox) args.push('-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
  if (o.runas) args.push('-runas', o.runas);
  args.push('-kernel', o.kernel, '-initrd', o.initrd,
    '-append', `console=ttyS0 ${o.extra} ${o.add}`.trim());
  if (o.root) {
    args.push('-drive', `file=${o.root},format=raw,if=none,id=root,readonly=on`,
      '-device', 'virtio-blk-pci,drive=root,serial=helper-root');
  }
  if (o.floppy) args.push('-drive', `file=${o.floppy},if=floppy,format=raw,readonly=on`);
  for (const n of [0, 1, 2]) args.push('-serial', `file:${path.join(dir, `s${n}`)}`);
  args.push(...o.qemuArgs);
  return args;
}

function runOnce(o, dir) {
  return new Promise((resolve) => {
    for (const n of [0, 1, 2]) fs.rmSync(path.join(dir, `s${n}`), { force: true });
    const s1 = path.join(dir, 's1');
    const t0 = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    const [cmd, ...pre] = o.nice !== undefined ? ['nice', '-n', String(o.nice)] : [];
    const child = cmd
      ? spawn(cmd, [...pre, 'qemu-system-x86_64', ...qemuArgs(o, dir)], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('qemu-system-x86_64', qemuArgs(o, dir), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '', marker = null, firstLine = null, cpu = null;
    const tick = Number(process.env.CLK_TCK ?? 100);
    child.stderr.on('data', (d) => { stderr += d; });
    const poll = setInterval(() => {
      // QEMU's CPU time (user+sys) so far: less sensitive to host load than
      // wall time, but blind to guest idle waits (timers, floppy motor)
      try {
        const f = fs.readFileSync(`/proc/${child.pid}/stat`, 'latin1').split(') ')[1].split(' ');
        cpu = ((Number(f[11]) + Number(f[12])) / tick) * 1000;
      } catch {}
      if (marker !== null) return;
      let txt;
      try { txt = fs.readFileSync(s1, 'latin1'); } catch { return; }
      if (txt.includes(o.marker)) marker = ms();
      else if (txt.includes('\n') && firstLine === null) firstLine = txt.split('\n')[0];
    }, 2);
    const killer = setTimeout(() => child.kill('SIGKILL'), o.timeout * 1000);
    child.on('exit', (code, signal) => {
      const exit = ms();
      clearInterval(poll); clearTimeout(killer);
      let txt = '', guest = null;
      try { txt = fs.readFileSync(s1, 'latin1'); } catch {}
      try {
        // guest uptime at power-off, printed by the kernel even with "quiet"
        const m = [...fs.readFileSync(path.join(dir, 's0'), 'latin1').matchAll(/\[\s*(\d+\.\d+)\] reboot: (Power down|Restarting)/g)].pop();
        if (m) guest = Number(m[1]) * 1000;
      } catch {}
      if (marker === null && txt.includes(o.marker)) marker = exit;
      resolve({ marker, exit, cpu, guest, code, signal, s1: txt.split('\n')[0].replace(/\r/g, ''), stderr: stderr.trim() });
    });
  });
}

const median = (xs) => {
  const s = xs.filter((x) => x !== null).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function measure(configs, runs, keep) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snf-boot-'));
  const results = configs.map(() => []);
  const f = (x) => (x === null ? '   -  ' : (x / 1000).toFixed(2).padStart(6));
  for (let i = 0; i < runs; i++) {
    for (const [k, c] of configs.entries()) {
      const r = await runOnce(c.o, dir);
      results[k].push(r);
      if (keep) {
        fs.mkdirSync(keep, { recursive: true });
        for (const n of [0, 1, 2]) {
          const src = path.join(dir, `s${n}`);
          if (fs.existsSync(src)) fs.copyFileSync(src, path.join(keep, `${c.name}-run${i + 1}.s${n}`));
        }
      }
      if (!c.o.json) {
        console.log(`${c.name.padEnd(6)} run ${i + 1}: marker ${f(r.marker)} s  exit ${f(r.exit)} s  cpu ${f(r.cpu)} s  guest ${f(r.guest)} s  rc=${r.code ?? r.signal}  ttyS1: ${JSON.stringify(r.s1.slice(0, 60))}${r.stderr ? '  qemu: ' + r.stderr.slice(0, 200) : ''}`);
      }
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return configs.map((c, k) => {
    const rs = results[k];
    return {
      name: c.name,
      cmdline: ['qemu-system-x86_64', ...qemuArgs(c.o, '$DIR')].join(' '),
      runs: rs.map(({ marker, exit, cpu, guest, code, s1 }) => ({ marker, exit, cpu, guest, code, s1 })),
      ok: rs.filter((r) => r.marker !== null).length,
      markerMedianMs: median(rs.map((r) => r.marker)),
      exitMedianMs: median(rs.map((r) => r.exit)),
      cpuMedianMs: median(rs.map((r) => r.cpu)),
      guestMedianMs: median(rs.map((r) => r.guest)),
    };
  });
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const configs = [{ name: 'vm', o }];
  if (o.floor) {
    configs.push({ name: 'floor', o: { ...o, initrd: o.floor, root: undefined, floppy: undefined, marker: o.floorMarker ?? 'FLOOR-OK' } });
  }
  const res = await measure(configs, o.runs, o.keep);
  const out = { vm: res[0] };
  if (o.floor) {
    out.floor = res[1];
    const r = (a, b) => (a !== null && b ? Number((a / b).toFixed(3)) : null);
    out.ratio = {
      marker: r(res[0].markerMedianMs, res[1].markerMedianMs),
      exit: r(res[0].exitMedianMs, res[1].exitMedianMs),
      cpu: r(res[0].cpuMedianMs, res[1].cpuMedianMs),
      guest: r(res[0].guestMedianMs, res[1].guestMedianMs),
    };
  }
  if (o.json) console.log(JSON.stringify(out));
  else {
    const f = (x) => (x === null ? '-' : (x / 1000).toFixed(2));
    for (const x of res) console.log(`${x.name}: median of ${o.runs} (${x.ok} ok): marker ${f(x.markerMedianMs)} s, exit ${f(x.exitMedianMs)} s, qemu cpu ${f(x.cpuMedianMs)} s, guest uptime ${f(x.guestMedianMs)} s`);
    if (out.ratio) console.log(`ratio vm/floor: marker ${out.ratio.marker}, exit ${out.ratio.exit}, cpu ${out.ratio.cpu}, guest ${out.ratio.guest}`);
  }
  process.exitCode = res.every((x) => x.ok === o.runs) ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('measure-boot.mjs')) {
  main().catch((e) => { console.error(e.message); process.exit(2); });
}
