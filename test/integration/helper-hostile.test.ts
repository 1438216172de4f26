/**
 * Hostile images in real helper VMs: planted symbolic links never send a write outside the
 * guest (the /etc/shadow link to a host path, a personality file through a linked
 * directory), a corrupt ext4 root stops the deployment with e2fsck's verdict in one line.
 * (An fstab naming a missing UUID: test/integration/helper-vm.test.ts.) The host is
 * untouched: every write happens inside the helper VM, on the instance disk only.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { makeSyntheticGuest, readGuestFile, type GuestOptions } from '../support/synthetic-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const skip = helperSkipReason();
let helperDir = '';
const nodes: NodeFixture[] = [];

async function deploy(guest: GuestOptions, env: Record<string, string> = {}, damage?: (disk: string) => void) {
  const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\n`);
  nodes.push(node);
  const image = join(node.imageDir, 'guest.img');
  makeSyntheticGuest(image, guest);
  damage?.(image);
  const disk = join(node.root, 'disk0');
  execFileSync('truncate', ['-s', '96M', disk]);
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: 'guest.img',
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PASSWD: 'Hostile-pw-3',
      DISK_0_PATH: disk,
      INSTANCE_NAME: 'vm1.example.org',
      SNF_IMAGE_CONFIG: node.configFile,
      ...env,
    },
  });
  return { ...r, disk };
}

/** debugfs -w on the root filesystem (partition 1 at sector 2048) of an image file. */
function debugfsWrite(image: string, request: string): void {
  const part = `${image}.p1`;
  execFileSync('dd', [`if=${image}`, `of=${part}`, 'bs=512', 'skip=2048', 'status=none']);
  execFileSync('debugfs', ['-w', '-R', request, part], { stdio: 'ignore' });
  execFileSync('dd', [`if=${part}`, `of=${image}`, 'bs=512', 'seek=2048', 'conv=notrunc', 'status=none']);
  rmSync(part);
}

describe('hostile images in the helper VM (real QEMU)', { skip, timeout: 1_800_000 }, () => {
  // Root's line: what a password change written through a link would replace. (Other lines
  // may change meanwhile: a concurrent test file adds and removes a user of its own.)
  const rootShadowLine = () =>
    readFileSync('/etc/shadow', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('root:'));
  const hostRoot = rootShadowLine();
  before(() => {
    helperDir = ensureHelper();
  });
  after(() => {
    for (const node of nodes) rmSync(node.root, { recursive: true, force: true });
    assert.equal(rootShadowLine(), hostRoot, "the host /etc/shadow's root entry is untouched");
  });

  it('/etc/shadow linked to a path outside the root: the error names the missing file, nothing is written through the link', async () => {
    const r = await deploy({ links: { 'etc/shadow': '/../../../../../etc/host-shadow' } });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /ERROR the image's \/etc\/shadow \(a link to \/etc\/host-shadow inside the image\) does not exist$/m,
    );
  });

  it('a personality file through a planted directory link lands inside the guest', async () => {
    const personality = JSON.stringify([
      { path: '/etc/motd.d/banner', contents: Buffer.from('hello\n').toString('base64'), mode: 420 },
    ]);
    const r = await deploy(
      { links: { 'etc/motd.d': '/../../../../../var/planted' } },
      { OSP_IMG_PERSONALITY: personality },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      readGuestFile(r.disk, '/var/planted/banner'),
      'hello\n',
      'written where the link points inside the guest',
    );
  });

  it("a corrupt ext4 root stops the deployment with e2fsck's verdict in one line", async () => {
    const r = await deploy({}, { OSP_IMG_PROPERTIES: '{"OSFAMILY": "linux", "ROOT_PARTITION": "1"}' }, (image) =>
      debugfsWrite(image, 'clri <2>'),
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /ERROR The ext4 filesystem on \/dev\/vd[a-z]1 has errors e2fsck cannot fix automatically \(exit \d+\)/,
    );
  });
});
