/**
 * What a running helper VM leaves reachable on the host (real QEMU, built binary): the
 * config floppy (password, keys) exists by no name while QEMU runs, and two deployments'
 * QEMU processes run under different uids (one compromised helper cannot signal another).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { makeSyntheticGuest } from '../support/synthetic-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const SECRET = 'Isolation-Secret-pw-5521';
const skip = helperSkipReason();
let helperDir = '';

interface QemuProcess {
  pid: number;
  uid: number;
}

/** The helper QEMU process (not its timeout(1) wrapper) given `disk`. */
function qemuOf(disk: string): QemuProcess | undefined {
  const r = spawnSync('ps', ['-eo', 'pid,uid,args', '--no-headers'], { encoding: 'utf8' });
  const line = r.stdout
    .split('\n')
    .find((l) => /^\s*\d+\s+\d+\s+(\S*\/)?qemu-system/.test(l) && l.includes(`file=${disk},`));
  if (!line) return undefined;
  const [pid, uid] = line.trim().split(/\s+/);
  return { pid: Number(pid), uid: Number(uid) };
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

function deployment(): { node: NodeFixture; disk: string; tmp: string; env: Record<string, string> } {
  const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=600\n`);
  makeSyntheticGuest(join(node.imageDir, 'guest.img'));
  const disk = join(node.root, 'disk0');
  execFileSync('truncate', ['-s', '96M', disk]);
  const tmp = join(node.root, 'tmp');
  mkdirSync(tmp);
  const env = {
    ...CREATE_ENV,
    OSP_IMG_ID: 'guest.img',
    OSP_IMG_FORMAT: 'diskdump',
    OSP_IMG_PASSWD: SECRET,
    DISK_0_PATH: disk,
    INSTANCE_NAME: 'vm1.example.org',
    SNF_IMAGE_CONFIG: node.configFile,
    TMPDIR: tmp,
  };
  return { node, disk, tmp, env };
}

describe('helper VM isolation on the host (real QEMU)', { skip, timeout: 1_800_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
  });

  it('the config floppy exists by no name while QEMU runs, and no file holds the password', async () => {
    const { disk, tmp, env } = deployment();
    const looks: string[][] = [];
    let qemuSeen = false;
    const watcher = setInterval(() => {
      if (!qemuOf(disk)) return;
      qemuSeen = true;
      try {
        looks.push(filesUnder(tmp).filter((f) => /floppy|personality/.test(f) || readFileSync(f).includes(SECRET)));
      } catch {
        // A file went away between listing and reading it (the deployment ended).
      }
    }, 100);
    const r = await runScript('create', { env });
    clearInterval(watcher);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(qemuSeen && looks.length > 0, 'QEMU was observed running');
    assert.deepEqual(
      looks.filter((l) => l.length > 0),
      [],
      'no floppy file by name, no file with the password, while QEMU ran',
    );
  });

  it('two concurrent helper VMs run under different unprivileged uids', async () => {
    const a = deployment();
    const b = deployment();
    const uids = { a: new Set<number>(), b: new Set<number>() };
    const watcher = setInterval(() => {
      const qa = qemuOf(a.disk);
      const qb = qemuOf(b.disk);
      // Sampled only while both run, after QEMU dropped root (it starts as root to open the disks).
      if (qa && qb && qa.uid !== 0 && qb.uid !== 0) {
        uids.a.add(qa.uid);
        uids.b.add(qb.uid);
      }
    }, 100);
    const [ra, rb] = await Promise.all([runScript('create', { env: a.env }), runScript('create', { env: b.env })]);
    clearInterval(watcher);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    assert.ok(uids.a.size > 0 && uids.b.size > 0, 'both QEMU processes were seen running at the same time');
    for (const uid of uids.a) assert.ok(!uids.b.has(uid), `uid ${uid} shared by both helper VMs`);
  });
});
