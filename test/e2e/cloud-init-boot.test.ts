/**
 * End to end on a cloud-style image (scripts/cloud-test-image: Debian 13 with Debian's
 * cloud-init, netplan for systemd-networkd and the catch-all netplan file of Debian's cloud
 * images): `create` as Ganeti runs it with CLOUD_INIT=yes, then the same image in files mode
 * (the default), each booted and checked from the inside with the same checks. One NIC with
 * a static address and a MAC, as Ganeti passes NIC_0_*.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runScript } from '../support/binary.ts';
import { checkDeployedDisk, type CheckResult, type ExpectedState } from '../support/boot-checker.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { ensureCloudTestImage, type CloudTestImage } from '../support/test-images.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const GiB = 1024 * 1024 * 1024;
const skip = helperSkipReason();
let image: CloudTestImage;
let helperDir = '';
let node: NodeFixture;
let authKey = '';

const MAC = 'aa:00:00:c1:0d:01';
const PASSWORD = 'Cloud-e2e-Passw0rd!';
const MOTD = 'Deployed by snf-image (cloud-style image)\n';
const USERDATA_TEXT = 'written by cloud-init from cloud_userdata';
const USERDATA = `#cloud-config\n${JSON.stringify({
  write_files: [{ path: '/root/cloud-userdata-applied', content: `${USERDATA_TEXT}\n`, permissions: '0600' }],
})}\n`;

function env(disk: string, hostname: string, extra: Record<string, string>): Record<string, string> {
  return {
    ...CREATE_ENV,
    INSTANCE_NAME: hostname,
    DISK_0_PATH: disk,
    DISK_0_SIZE: '4096',
    NIC_0_MAC: MAC,
    NIC_0_IP: '192.0.2.20',
    NIC_0_NETWORK_SUBNET: '192.0.2.0/24',
    NIC_0_NETWORK_GATEWAY: '192.0.2.1',
    OSP_IMG_ID: image.image.files.raw,
    OSP_IMG_FORMAT: 'diskdump',
    OSP_IMG_PASSWD: PASSWORD,
    OSP_AUTH_KEYS: authKey,
    OSP_IMG_PERSONALITY: JSON.stringify([
      { path: '/etc/motd', contents: Buffer.from(MOTD).toString('base64'), owner: 'root', group: 'root', mode: 0o644 },
    ]),
    SNF_IMAGE_CONFIG: node.configFile,
    ...extra,
  };
}

/** What both modes must give: the files mode result, which cloud-init mode must equal. */
function expectedState(hostname: string): ExpectedState {
  const short = hostname.split('.')[0] as string;
  return {
    oldPassword: image.image.template_password,
    password: PASSWORD,
    hostname,
    fqdn: hostname,
    minRootBytes: 3 * GiB,
    oldHostKeyFingerprints: image.image.ssh_host_keys.map((k) => k.fingerprint),
    sshdRunning: true,
    files: { '/etc/motd': MOTD },
    address: { mac: MAC, cidr: '192.0.2.20/24' },
    // Under TCG on a loaded host the first boot (cloud-init's stages in Python) takes minutes.
    loginTimeoutMs: 900_000,
    commands: [
      {
        name: '/etc/hosts names the host on 127.0.1.1',
        command: `awk '$1 == "127.0.1.1" { $1 = $1; print }' /etc/hosts`,
        expect: `127.0.1.1 ${hostname} ${short}`,
      },
      {
        name: "auth_keys in root's authorized_keys (root's, mode 600)",
        command: `grep -cxF '${authKey}' /root/.ssh/authorized_keys; stat -c '%U %a' /root/.ssh/authorized_keys`,
        expect: '1\nroot 600',
      },
      {
        name: 'no other address on the NIC than the static one and link-local',
        command: `ip -o -4 addr show dev "$(grep -lx ${MAC} /sys/class/net/*/address | cut -d/ -f5)" | awk '{ print $4 }'`,
        expect: '192.0.2.20/24',
      },
    ],
  };
}

/** The checks only cloud-init mode has (cloud-init runs; files mode leaves it disabled). */
const CLOUD_INIT_CHECKS: NonNullable<ExpectedState['commands']> = [
  {
    // First: the final stage (per-once scripts, runcmd) may still run after the login prompt.
    name: 'cloud-init finished without errors',
    command: 'cloud-init status --wait >/dev/null 2>&1; cloud-init status | head -1',
    expect: 'status: done',
    timeoutMs: 600_000,
  },
  {
    name: 'cloud_userdata applied',
    command: 'cat /root/cloud-userdata-applied',
    expect: USERDATA_TEXT,
  },
  {
    name: 'user-data emptied after first boot (upstream), root only',
    command: "stat -c '%s %a %U' /var/lib/cloud/seed/nocloud-net/user-data",
    expect: '0 600 root',
  },
];

function report(label: string, checks: CheckResult[]): void {
  for (const c of checks) console.log(`# ${label}: ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
}

function failed(checks: CheckResult[]): string[] {
  return checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
}

async function deployAndCheck(
  label: string,
  extra: Record<string, string>,
  expected: ExpectedState,
): Promise<{ checks: CheckResult[]; stderr: string }> {
  const disk = join(node.root, `${label}.disk`);
  execFileSync('truncate', ['-s', '4G', disk]);
  const started = Date.now();
  const r = await runScript('create', { env: env(disk, expected.hostname as string, extra) });
  console.log(`# ${label}: create took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(r.code, 0, r.stderr.split('\n').slice(-20).join('\n'));
  assert.ok(!r.stderr.includes(PASSWORD), 'password not in the log');
  const booted = Date.now();
  let transcript = '';
  const { checks, bootSeconds } = await checkDeployedDisk(
    { disk, nic: { mac: MAC }, probeKernel: join(helperDir, 'kernel'), log: (text) => (transcript += text) },
    expected,
  );
  if (failed(checks).length > 0) console.log(`# ${label}: end of the console:\n${transcript.slice(-4000)}`);
  console.log(
    `# ${label}: guest booted to a login prompt in ${bootSeconds.toFixed(1)} s; boot and checks ${((Date.now() - booted) / 1000).toFixed(1)} s`,
  );
  report(label, checks);
  rmSync(disk, { force: true });
  return { checks, stderr: r.stderr };
}

describe('end to end: a cloud-style Debian 13 image (cloud-init, netplan) in cloud-init and files mode', {
  skip,
  timeout: 3_600_000,
}, () => {
  before(() => {
    helperDir = ensureHelper();
    image = ensureCloudTestImage();
    console.log(`# cloud-init ${image.cloudInit}`);
    node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\nIMAGE_DIR=${image.dir}\n`);
    const keyDir = mkdtempSync(join(tmpdir(), 'snf-cloud-key-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cloud-e2e@test', '-f', join(keyDir, 'k')]);
    authKey = readFileSync(join(keyDir, 'k.pub'), 'utf8').trim();
    rmSync(keyDir, { recursive: true, force: true });
  });
  after(() => {
    if (node) rmSync(node.root, { recursive: true, force: true });
  });

  it('CLOUD_INIT=yes: cloud-init reads the seed; the booted guest is as files mode makes it, plus cloud_userdata', async () => {
    const expected = expectedState('cloud.e2e.test');
    expected.commands = [...CLOUD_INIT_CHECKS, ...(expected.commands ?? [])];
    // cloud-init sets the password in its config stage, which the login prompt does not wait
    // for: first its final message (written to the console).
    expected.waitForConsole = { pattern: /Cloud-init v\. \S+ finished at/, timeoutMs: 900_000 };
    const { checks, stderr } = await deployAndCheck(
      'cloud-init',
      {
        OSP_IMG_PROPERTIES: JSON.stringify({ CLOUD_INIT: 'yes' }),
        OSP_CLOUD_USERDATA: Buffer.from(USERDATA).toString('base64'),
      },
      expected,
    );
    assert.ok(!stderr.includes(USERDATA_TEXT), 'cloud_userdata not in the log');
    assert.deepEqual(failed(checks), []);
  });

  it('files mode (the default) on the same image passes the same checks', async () => {
    const expected = expectedState('files.e2e.test');
    expected.commands = [
      ...(expected.commands ?? []),
      {
        name: 'cloud-init found no datasource and stayed out of the way',
        command: 'cloud-init status | head -1',
        expect: 'status: disabled',
      },
    ];
    const { checks } = await deployAndCheck('files', {}, expected);
    assert.deepEqual(failed(checks), []);
  });
});
