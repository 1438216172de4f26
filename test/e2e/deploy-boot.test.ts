/**
 * End to end: `create` run as Ganeti runs it (the built binary, a Ganeti-shaped environment,
 * a file disk or a loop device) deploys a real Debian image built from Debian packages, the
 * helper VM customizes it, and the result is booted and checked from the inside.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { runScript } from '../support/binary.ts';
import { checkDeployedDisk, type CheckResult, type ExpectedState } from '../support/boot-checker.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { ensureTestImages, type TestImages } from '../support/test-images.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const GiB = 1024 * 1024 * 1024;
const skip = helperSkipReason();
let images: TestImages;
let helperDir = '';
let node: NodeFixture;

const MAC = 'aa:00:00:12:34:56';
const PASSWORD = 'E2e-new-Passw0rd!';
const MOTD = 'Deployed by snf-image end-to-end test\n';

function env(
  disk: string,
  imgId: string,
  format: string,
  hostname: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ...CREATE_ENV,
    INSTANCE_NAME: hostname,
    DISK_0_PATH: disk,
    DISK_0_SIZE: '4096',
    NIC_0_MAC: MAC,
    NIC_0_IP: '192.0.2.10',
    NIC_0_NETWORK_SUBNET: '192.0.2.0/24',
    NIC_0_NETWORK_GATEWAY: '192.0.2.1',
    OSP_IMG_ID: imgId,
    OSP_IMG_FORMAT: format,
    OSP_IMG_PASSWD: PASSWORD,
    OSP_AUTH_KEYS: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eTestKeyMaterialForSnfImage0000000000 e2e@test',
    OSP_IMG_PERSONALITY: JSON.stringify([
      { path: '/etc/motd', contents: Buffer.from(MOTD).toString('base64'), owner: 'root', group: 'root', mode: 0o644 },
    ]),
    SNF_IMAGE_CONFIG: node.configFile,
    ...extra,
  };
}

function report(label: string, checks: CheckResult[]): void {
  for (const c of checks) console.log(`# ${label}: ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
}

async function deployAndCheck(
  label: string,
  image: 'debian-mbr' | 'debian-gpt',
  form: 'raw' | 'zst' | 'qcow2',
  target: 'file' | 'loop',
  extra: Record<string, string> = {},
): Promise<{ checks: CheckResult[]; expected: ExpectedState }> {
  const meta = images.images[image];
  const backing = join(node.root, `${label}.disk`);
  execFileSync('truncate', ['-s', '4G', backing]);
  const loop = target === 'loop' ? execFileSync('losetup', ['-f', '--show', backing]).toString().trim() : undefined;
  const hostname = `${label}.e2e.test`;
  try {
    const started = Date.now();
    const r = await runScript('create', {
      env: env(loop ?? backing, meta.files[form], form === 'qcow2' ? 'qcow2' : 'diskdump', hostname, extra),
    });
    console.log(`# ${label}: create took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const line of r.stderr
      .split('\n')
      .filter((l) => /image deployed|helper task timing|helper VM finished|starting the helper/.test(l)))
      console.log(`# ${label}: ${line.replace(/^\S+ /, '')}`);
    assert.equal(r.code, 0, r.stderr.split('\n').slice(-20).join('\n'));
    assert.ok(!r.stderr.includes(PASSWORD), 'password not in the log');
  } finally {
    if (loop) execFileSync('losetup', ['-d', loop]);
  }
  const expected: ExpectedState = {
    oldPassword: meta.template_password,
    password: PASSWORD,
    hostname,
    minRootBytes: 3 * GiB,
    oldHostKeyFingerprints: meta.ssh_host_keys.map((k) => k.fingerprint),
    sshdRunning: true,
    files: { '/etc/motd': MOTD },
    address: { mac: MAC, cidr: '192.0.2.10/24' },
  };
  const { checks, bootSeconds } = await checkDeployedDisk(
    { disk: backing, nic: { mac: MAC }, probeKernel: join(helperDir, 'kernel') },
    expected,
  );
  console.log(`# ${label}: guest booted to a login prompt in ${bootSeconds.toFixed(1)} s`);
  report(label, checks);
  return { checks, expected };
}

function failed(checks: CheckResult[]): string[] {
  return checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
}

describe('end to end: deploy real Debian images and boot them', { skip, timeout: 3_600_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
    images = ensureTestImages();
    node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\nIMAGE_DIR=${images.dir}\n`);
  });

  it('MBR image (zstd) onto a file disk: every customization is visible in the booted guest', async () => {
    const { checks } = await deployAndCheck('mbr-zst', 'debian-mbr', 'zst', 'file');
    assert.deepEqual(failed(checks), []);
  });

  it('GPT image with a separate /boot (qcow2) onto a loop device', async () => {
    const { checks } = await deployAndCheck('gpt-qcow2', 'debian-gpt', 'qcow2', 'loop');
    assert.deepEqual(failed(checks), []);
  });

  it('the checks catch a missing customization (ChangePassword and AssignHostname excluded)', async () => {
    const { checks } = await deployAndCheck('negative', 'debian-mbr', 'raw', 'file', {
      OSP_IMG_PROPERTIES: '{"EXCLUDE_TASK_ChangePassword": "yes", "EXCLUDE_TASK_AssignHostname": "yes"}',
    });
    const failing = failed(checks).map((f) => f.split(':')[0]);
    assert.ok(failing.includes('old password rejected'), 'the template password still works');
    assert.ok(failing.includes('new password accepted'), 'the new password is rejected by the booted guest');
  });
});
