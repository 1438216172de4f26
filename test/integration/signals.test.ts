/**
 * SIGTERM, SIGINT and SIGHUP to `create` (built binary, Ganeti environment, loop device)
 * while the image is written and while the helper VM runs: create exits 128+signal only
 * after the helper's QEMU (and its timeout(1) wrapper) is gone and every temporary file is
 * removed (work directory, config floppy, downloaded image, cache .part file).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { binaryMissingReason, notRootReason, scriptLinks } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { makeSyntheticGuest } from '../support/synthetic-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const SIGNALS = [
  ['SIGTERM', 15],
  ['SIGINT', 2],
  ['SIGHUP', 1],
] as const;
const SECRET = 'Signal-Secret-pw-9035';
const loops = new Set<string>();

/** A loop device over a new file; detached by detach() (each test detaches its own, so few are in use at once). */
function loopDisk(node: NodeFixture, size: string): string {
  const file = join(node.root, 'disk0.file');
  execFileSync('truncate', ['-s', size, file]);
  const dev = execFileSync('losetup', ['-f', '--show', file]).toString().trim();
  loops.add(dev);
  return dev;
}

function detach(dev: string): void {
  spawnSync('losetup', ['-d', dev]);
  loops.delete(dev);
}

after(() => {
  for (const loop of loops) detach(loop);
});

interface Running {
  pid: number;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `create` through its Ganeti link with exactly `env` (env -i), stderr collected as it comes. */
function startCreate(env: Record<string, string>): Running {
  const child = spawn(join(scriptLinks(), 'create'), [], {
    env,
    cwd: scriptLinks(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { pid: child.pid ?? -1, stderr: () => err, exited };
}

async function waitFor(what: string, condition: () => boolean, run: Running, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  let done = false;
  void run.exited.then(() => (done = true));
  while (!condition()) {
    if (done) assert.fail(`create exited before ${what}:\n${run.stderr().slice(-3000)}`);
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}:\n${run.stderr().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Processes whose command line names `disk` (QEMU, its timeout(1) wrapper, qemu-img). */
function processesUsing(disk: string): string[] {
  const r = spawnSync('ps', ['-eo', 'pid,args', '--no-headers'], { encoding: 'utf8' });
  const name = new RegExp(`(^|[\\s=])${disk.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}([,\\s]|$)`);
  return r.stdout.split('\n').filter((l) => name.test(l) && !/\bps -eo\b/.test(l));
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(path, ...filesUnder(path));
    else out.push(path);
  }
  return out;
}

/** Serves `files` slowly (about 8 MiB/s), so an interrupted deployment is caught mid-way. */
async function slowServer(files: Record<string, Buffer>): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const body = files[(req.url ?? '').slice(1)];
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length, etag: '"v1"', 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    let at = 0;
    const timer = setInterval(() => {
      if (res.destroyed || at >= body.length) {
        clearInterval(timer);
        res.end();
        return;
      }
      res.write(body.subarray(at, at + 256 * 1024));
      at += 256 * 1024;
    }, 30);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('signals while the image is written (built binary, loop device)', {
  skip: binaryMissingReason() || notRootReason(),
}, () => {
  let server: Server;
  let url = '';
  before(async () => {
    const raw = randomBytes(64 * 1024 * 1024);
    const scratch = makeNode();
    writeFileSync(join(scratch.root, 'img.raw'), raw);
    execFileSync('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'qcow2',
      join(scratch.root, 'img.raw'),
      join(scratch.root, 'img.qcow2'),
    ]);
    ({ server, url } = await slowServer({
      'img.raw': raw,
      'img.qcow2': readFileSync(join(scratch.root, 'img.qcow2')),
    }));
  });
  after(() => server.close());

  function deployment(extraConfig: string) {
    const node = makeNode(extraConfig);
    const dirs = {
      tmp: join(node.root, 'tmp'),
      imageTmp: join(node.root, 'image-tmp'),
      cache: join(node.root, 'cache'),
    };
    for (const dir of Object.values(dirs)) mkdirSync(dir);
    writeFileSync(
      node.configFile,
      `${readFileSync(node.configFile, 'utf8')}IMAGE_TMP_DIR=${dirs.imageTmp}\nIMAGE_CACHE_DIR=${dirs.cache}\n`,
    );
    const disk = loopDisk(node, '96M');
    return { node, dirs, disk };
  }

  for (const [signal, number] of SIGNALS) {
    it(`${signal} during an http download into the image cache: exit ${128 + number}, the cache .part file removed`, async () => {
      const { node, dirs, disk } = deployment('');
      const run = startCreate({
        ...CREATE_ENV,
        OSP_IMG_ID: `${url}/img.raw`,
        OSP_IMG_FORMAT: 'diskdump',
        OSP_IMG_PASSWD: SECRET,
        OSP_IMG_PROPERTIES: '{"EXCLUDE_ALL_TASKS": "yes"}',
        DISK_0_PATH: disk,
        SNF_IMAGE_CONFIG: node.configFile,
        TMPDIR: dirs.tmp,
      });
      await waitFor(
        'the cache .part file to fill',
        () =>
          readdirSync(dirs.cache).some((f) => f.endsWith('.part') && statSync(join(dirs.cache, f)).size > 1024 * 1024),
        run,
      );
      process.kill(run.pid, signal);
      const { code } = await run.exited;
      assert.equal(code, 128 + number, run.stderr().slice(-2000));
      assert.deepEqual(
        readdirSync(dirs.cache).filter((f) => f.endsWith('.part')),
        [],
        'no .part file left',
      );
      assert.deepEqual(readdirSync(dirs.tmp), []);
      assert.deepEqual(processesUsing(disk), []);
      detach(disk);
    });

    it(`${signal} while a qcow2 image is downloaded for conversion: exit ${128 + number}, the temporary image removed`, async () => {
      const { node, dirs, disk } = deployment('IMAGE_CACHE=no\n');
      const run = startCreate({
        ...CREATE_ENV,
        OSP_IMG_ID: `${url}/img.qcow2`,
        OSP_IMG_FORMAT: 'qcow2',
        OSP_IMG_PASSWD: SECRET,
        OSP_IMG_PROPERTIES: '{"EXCLUDE_ALL_TASKS": "yes"}',
        DISK_0_PATH: disk,
        SNF_IMAGE_CONFIG: node.configFile,
        TMPDIR: dirs.tmp,
      });
      await waitFor(
        'the temporary image to fill',
        () => filesUnder(dirs.imageTmp).some((f) => f.endsWith('/image') && statSync(f).size > 1024 * 1024),
        run,
      );
      process.kill(run.pid, signal);
      const { code } = await run.exited;
      assert.equal(code, 128 + number, run.stderr().slice(-2000));
      assert.deepEqual(filesUnder(dirs.imageTmp), [], 'no temporary image left');
      assert.deepEqual(processesUsing(disk), []);
      detach(disk);
    });

    it(`${signal} while a local qcow2 image is converted: exit ${128 + number}, the NBD daemon and the converter gone`, async () => {
      const { node, dirs, disk } = deployment('');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(node.imageDir, 'small.qcow2'), '8M']);
      // A qemu-img that waits before converting, so the signal comes mid-conversion.
      // Outside the node's 0700 directory: the converter runs unprivileged.
      const bin = mkdtempSync(join(tmpdir(), 'snf-bin-'));
      chmodSync(bin, 0o755);
      const realQemuImg = execFileSync('sh', ['-c', 'command -v qemu-img']).toString().trim();
      writeFileSync(join(bin, 'qemu-img'), `#!/bin/sh\n[ "$1" = convert ] && sleep 20\nexec ${realQemuImg} "$@"\n`, {
        mode: 0o755,
      });
      const PATH = `${bin}:${CREATE_ENV.PATH}`;
      const run = startCreate({
        ...CREATE_ENV,
        PATH,
        OSP_IMG_ID: 'small.qcow2',
        OSP_IMG_FORMAT: 'qcow2',
        OSP_IMG_PASSWD: SECRET,
        OSP_IMG_PROPERTIES: '{"EXCLUDE_ALL_TASKS": "yes"}',
        DISK_0_PATH: disk,
        SNF_IMAGE_CONFIG: node.configFile,
        TMPDIR: dirs.tmp,
      });
      const ours = () =>
        spawnSync('ps', ['-eo', 'pid,args', '--no-headers'], { encoding: 'utf8' })
          .stdout.split('\n')
          .filter(
            (l) => (l.includes(dirs.tmp) && l.includes('qemu-storage-daemon')) || l.includes(join(bin, 'qemu-img')),
          );
      await waitFor('the converter and the NBD daemon to run', () => ours().length >= 2, run);
      process.kill(run.pid, signal);
      const { code } = await run.exited;
      assert.equal(code, 128 + number, run.stderr().slice(-2000));
      assert.deepEqual(ours(), [], 'no NBD daemon or converter left');
      assert.deepEqual(readdirSync(dirs.tmp), [], 'the NBD socket directory removed');
      detach(disk);
      rmSync(bin, { recursive: true, force: true });
    });
  }
});

describe('signals while the helper VM runs (real QEMU, loop device)', {
  skip: helperSkipReason(),
  timeout: 1_800_000,
}, () => {
  let helperDir = '';
  before(() => {
    helperDir = ensureHelper();
  });

  for (const [signal, number] of SIGNALS) {
    it(`${signal}: exit ${128 + number} after QEMU and its timeout(1) wrapper are gone; no work directory, no floppy file`, async () => {
      const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=600\n`);
      makeSyntheticGuest(join(node.imageDir, 'guest.img'));
      const tmp = join(node.root, 'tmp');
      mkdirSync(tmp);
      const disk = loopDisk(node, '96M');
      const run = startCreate({
        ...CREATE_ENV,
        OSP_IMG_ID: 'guest.img',
        OSP_IMG_FORMAT: 'diskdump',
        OSP_IMG_PASSWD: SECRET,
        DISK_0_PATH: disk,
        INSTANCE_NAME: 'vm1.example.org',
        SNF_IMAGE_CONFIG: node.configFile,
        TMPDIR: tmp,
      });
      await waitFor(
        'the helper VM to boot',
        () => /HELPER: /.test(run.stderr()) && processesUsing(disk).some((l) => /qemu-system/.test(l)),
        run,
        600_000,
      );
      process.kill(run.pid, signal);
      const { code } = await run.exited;
      const left = processesUsing(disk);
      assert.equal(code, 128 + number, run.stderr().slice(-2000));
      assert.deepEqual(left, [], 'QEMU and its wrapper ended before create exited');
      assert.deepEqual(filesUnder(tmp), [], 'no work directory or floppy file left');
      assert.ok(!run.stderr().includes(SECRET));
      detach(disk);
    });
  }
});
