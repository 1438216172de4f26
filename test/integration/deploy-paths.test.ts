/**
 * Issue 17 item 5: paths that no test ran before, each asserted so that it fails when the
 * feature goes.
 *
 * - `snf-image deploy` of an extdump image in a real helper VM: the image written after a
 *   synthesized MBR, customized (hostname), with img_passwd_hash (--passwd-hash-file) put
 *   in /etc/shadow as given, auth_keys (--auth-keys-file) in root's authorized_keys with
 *   its owner and mode, and its SHA512 property checked; no secret in the log.
 * - `create` of an ntfsdump image (a Windows-shaped NTFS volume) in the helper VM: written
 *   after a synthesized MBR (type 7), customized (the answer file with the computer name).
 * - SHA512 checksums: a wrong one fails before the disk is customized, in one line.
 * - Every secret option of `snf-image deploy` is read (a bad value is refused naming the
 *   parameter, never showing the value) and no secret reaches the log or any process's
 *   arguments.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { binaryMissingReason, notRootReason, runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { readGuestFile } from '../support/offline-guest.ts';
import { diskPartitions } from '../support/partition-table.ts';
import { makeSyntheticGuest } from '../support/synthetic-guest.ts';
import { makeWindowsGuest, mountWindowsDisk, windowsToolsSkipReason } from '../support/windows-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';
import { parseUnattend, shellSetupValue } from '../../helper/windows/unattend.ts';

/** A sha512-crypt hash, as an administrator makes one (openssl passwd -6). */
const PASSWD_HASH = execFileSync('openssl', ['passwd', '-6', '-salt', 'itemfivesalt', '-stdin'], {
  input: 'item5-Passw0rd\n',
})
  .toString()
  .trim();
const nodes: NodeFixture[] = [];

function sshKey(comment: string): string {
  return execFileSync('sh', [
    '-c',
    `d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N "" -C ${comment} -f $d/k && cat $d/k.pub && rm -r $d`,
  ])
    .toString()
    .trim();
}

/** Partition 1 of a disk image, exactly (a filesystem dump as `dd` of the partition makes it). */
function extractPartition(disk: string, dump: string): void {
  const [part] = diskPartitions(disk);
  assert.ok(part, `${disk} has a partition`);
  execFileSync('dd', [`if=${disk}`, `of=${dump}`, 'bs=512', `skip=${part.start}`, `count=${part.size}`, 'status=none']);
}

/** An ext4 filesystem image (extdump) holding a synthetic Linux root tree, and its SHA512. */
function makeExtdump(path: string): string {
  const disk = `${path}.disk`;
  makeSyntheticGuest(disk, { fstab: () => 'LABEL=root / ext4 defaults 0 1\n' });
  extractPartition(disk, path);
  rmSync(disk);
  execFileSync('e2label', [path, 'root']);
  return createHash('sha512').update(readFileSync(path)).digest('hex');
}

/** debugfs stat of a path in partition 1: mode (octal) and uid. */
function guestStat(disk: string, path: string): { mode: string; uid: number } {
  const table = JSON.parse(execFileSync('sfdisk', ['--json', disk]).toString()) as {
    partitiontable: { partitions: Array<{ start: number }> };
  };
  const offset = (table.partitiontable.partitions[0]?.start ?? 0) * 512;
  const out = execFileSync('debugfs', ['-R', `stat ${path}`, `${disk}?offset=${offset}`], {
    stdio: ['ignore', 'pipe', 'ignore'],
  }).toString();
  const mode = /Mode:\s+(\d+)/.exec(out)?.[1];
  const uid = /User:\s+(\d+)/.exec(out)?.[1];
  assert.ok(mode && uid, `debugfs stat ${path}: ${out.slice(0, 200)}`);
  return { mode, uid: Number(uid) };
}

/** A node whose PROGRESS_MONITOR records every process argument on the machine while it runs. */
function spyingNode(extra = ''): { node: NodeFixture; spy: string } {
  const node = makeNode(extra);
  nodes.push(node);
  const spy = join(node.root, 'spy');
  const monitor = join(node.root, 'monitor.sh');
  writeFileSync(monitor, `#!/bin/sh\nps -eo args > ${spy}.ps\ncat > ${spy}.messages\n`);
  chmodSync(monitor, 0o755);
  writeFileSync(node.configFile, `${readFileSync(node.configFile, 'utf8')}PROGRESS_MONITOR=${monitor}\n`);
  return { node, spy };
}

function assertNoSecret(secrets: readonly string[], texts: Record<string, string>): void {
  for (const [label, text] of Object.entries(texts))
    for (const secret of secrets)
      assert.ok(!text.includes(secret), `${label} shows a secret (${secret.slice(0, 10)}…)`);
}

after(() => {
  for (const node of nodes) rmSync(node.root, { recursive: true, force: true });
});

describe('snf-image deploy: secret options, SHA512 (built binary, no helper)', {
  skip: binaryMissingReason() || notRootReason(),
}, () => {
  it('each secret option is read: a bad value is refused naming the parameter, never showing it', async () => {
    const { node } = spyingNode();
    writeFileSync(join(node.imageDir, 'raw.img'), Buffer.alloc(1024 * 1024, 1));
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '4M', disk]);
    const secretFile = (name: string, content: string) => {
      const path = join(node.root, name);
      writeFileSync(path, content, { mode: 0o600 });
      return path;
    };
    const cases: Array<[string[], string, RegExp]> = [
      [['--passwd-hash-file', secretFile('hash', 'plain-not-a-hash-77')], 'plain-not-a-hash-77', /img_passwd_hash: /],
      [['--auth-keys-file', secretFile('keys', 'not-a-key-secret-88\n')], 'not-a-key-secret-88', /auth_keys: /],
      [
        ['--cloud-userdata-file', secretFile('ud', '!!not-base64-secret-99')],
        'not-base64-secret-99',
        /cloud_userdata: /,
      ],
      [['--passwd-file', secretFile('empty', '\n')], '\u0000', /img_passwd: is set but empty/],
      [['--os-product-key-file', join(node.root, 'missing-key')], '\u0000', /--os-product-key-file: cannot read/],
    ];
    for (const [args, secret, error] of cases) {
      const r = await runScript('snf-image', {
        args: [
          'deploy',
          '--disk',
          disk,
          '--img-id',
          'raw.img',
          '--img-format',
          'diskdump',
          '--no-helper',
          '--no-progress',
          ...args,
        ],
        env: { PATH: process.env.PATH ?? '', SNF_IMAGE_CONFIG: node.configFile },
      });
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, error, args[0]);
      assert.ok(!r.stderr.includes(secret), `${args[0]}: the value is not shown`);
    }
  });

  it('SHA512: the right digest deploys, a wrong one fails in one line; secrets from stdin and files stay out of logs and argv', async () => {
    const { node, spy } = spyingNode();
    const image = join(node.imageDir, 'raw.img');
    writeFileSync(image, Buffer.alloc(1024 * 1024, 3));
    const sha512 = createHash('sha512').update(readFileSync(image)).digest('hex');
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '4M', disk]);
    const password = 'stdin-Passw0rd-4411';
    const productKey = 'ITEM5-KEYAA-BBBBB-CCCCC-DDDDD';
    const userData = Buffer.from('#cloud-config\n# userdata-secret-5512\n').toString('base64');
    const stdin = join(node.root, 'stdin');
    writeFileSync(stdin, `${password}\n`, { mode: 0o600 });
    writeFileSync(join(node.root, 'pk'), productKey, { mode: 0o600 });
    writeFileSync(join(node.root, 'ud'), userData, { mode: 0o600 });
    const deploy = (digest: string) =>
      runScript('snf-image', {
        args: [
          'deploy',
          '--disk',
          disk,
          '--img-id',
          'raw.img',
          '--img-format',
          'diskdump',
          '--no-helper',
          '--no-progress',
          '--img-properties',
          JSON.stringify({ SHA512: digest }),
          '--passwd-stdin',
          '--os-product-key-file',
          join(node.root, 'pk'),
          '--cloud-userdata-file',
          join(node.root, 'ud'),
        ],
        stdinFile: stdin,
        env: { PATH: process.env.PATH ?? '', SNF_IMAGE_CONFIG: node.configFile },
      });
    const ok = await deploy(sha512);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(readFileSync(disk).subarray(0, 1024 * 1024), readFileSync(image));
    const secrets = [password, productKey, userData, 'userdata-secret-5512'];
    assertNoSecret(secrets, {
      stderr: ok.stderr,
      stdout: ok.stdout.toString(),
      argv: readFileSync(`${spy}.ps`, 'utf8'),
      monitor: readFileSync(`${spy}.messages`, 'utf8'),
    });

    const wrong = sha512.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const bad = await deploy(wrong);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /^snf-image: img_id: sha512 checksum mismatch \(expected [0-9a-f]{16}… from the SHA512 image property, got [0-9a-f]{16}…\): the image is corrupt or not the one named$/m,
    );
    assertNoSecret(secrets, { stderr: bad.stderr });
  });
});

describe('snf-image deploy of an extdump image, customized in the helper VM', {
  skip: helperSkipReason(),
  timeout: 3_600_000,
}, () => {
  let helperDir = '';
  before(() => {
    helperDir = ensureHelper();
  });

  it('MBR synthesized, partition grown, hostname, img_passwd_hash as given, auth_keys with owner and mode, SHA512 checked', async () => {
    const { node, spy } = spyingNode(`HELPER_SOFT_TIMEOUT=900\n`);
    writeFileSync(node.configFile, `${readFileSync(node.configFile, 'utf8')}HELPER_DIR=${helperDir}\n`);
    const work = mkdtempSync(join(tmpdir(), 'snf-extdump-'));
    try {
      const image = join(node.imageDir, 'root.extdump');
      const sha512 = makeExtdump(image);
      const disk = join(node.root, 'disk0');
      execFileSync('truncate', ['-s', '128M', disk]);
      const key = sshKey('item5-key');
      writeFileSync(join(work, 'hash'), `${PASSWD_HASH}\n`, { mode: 0o600 });
      writeFileSync(join(work, 'keys'), `${key}\n`, { mode: 0o600 });
      const r = await runScript('snf-image', {
        args: [
          'deploy',
          '--disk',
          disk,
          '--img-id',
          'root.extdump',
          '--img-format',
          'extdump',
          '--hostname',
          'extdump-vm.example.org',
          '--no-progress',
          '--img-properties',
          JSON.stringify({ SHA512: sha512 }),
          '--passwd-hash-file',
          join(work, 'hash'),
          '--auth-keys-file',
          join(work, 'keys'),
        ],
        env: { PATH: process.env.PATH ?? '', SNF_IMAGE_CONFIG: node.configFile },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(
        r.stderr,
        /completed by detection/,
        'OSFAMILY and ROOT_PARTITION come from the synthesized table',
      );

      // The synthesized MBR: one Linux partition from sector 2048, grown to the end of the disk.
      const parts = diskPartitions(disk);
      assert.equal(parts.length, 1);
      assert.equal(parts[0]?.start, 2048);
      assert.equal(parts[0]?.type, '83');
      assert.equal((parts[0]?.start ?? 0) + (parts[0]?.size ?? 0), 128 * 2048);
      assert.equal(readFileSync(disk).readUInt16LE(510), 0xaa55);

      assert.equal(readGuestFile(disk, 1, '/etc/hostname'), 'extdump-vm.example.org\n');
      const shadowRoot = readGuestFile(disk, 1, '/etc/shadow')
        .split('\n')
        .find((l) => l.startsWith('root:'));
      assert.equal(shadowRoot?.split(':')[1], PASSWD_HASH, 'img_passwd_hash written as given');

      const keys = readGuestFile(disk, 1, '/root/.ssh/authorized_keys');
      assert.ok(keys.split('\n').includes(key), 'the key is in root’s authorized_keys');
      assert.deepEqual(guestStat(disk, '/root/.ssh/authorized_keys'), { mode: '0600', uid: 0 });
      assert.deepEqual(guestStat(disk, '/root/.ssh'), { mode: '0700', uid: 0 });

      assertNoSecret([PASSWD_HASH, key.split(' ')[1] ?? key], {
        stderr: r.stderr,
        stdout: r.stdout.toString(),
        argv: readFileSync(`${spy}.ps`, 'utf8'),
        monitor: readFileSync(`${spy}.messages`, 'utf8'),
      });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('create of an ntfsdump image, customized in the helper VM', {
  skip: helperSkipReason() || windowsToolsSkipReason(),
  timeout: 3_600_000,
}, () => {
  let helperDir = '';
  before(() => {
    helperDir = ensureHelper();
  });

  it('MBR synthesized (NTFS, type 7) in front of the volume, partition grown, answer file with the computer name', async () => {
    const node = makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\n`);
    nodes.push(node);
    const windowsDisk = join(node.root, 'windows.disk');
    makeWindowsGuest(windowsDisk, { label: 'dos', version: '10.0', users: ['Administrator'] });
    const image = join(node.imageDir, 'windows.ntfsdump');
    extractPartition(windowsDisk, image);
    rmSync(windowsDisk);
    const disk = join(node.root, 'disk0');
    execFileSync('truncate', ['-s', '96M', disk]);
    const r = await runScript('create', {
      env: {
        ...CREATE_ENV,
        OSP_IMG_ID: 'windows.ntfsdump',
        OSP_IMG_FORMAT: 'ntfsdump',
        OSP_IMG_PASSWD: 'Ntfsdump-pw-6620',
        DISK_0_PATH: disk,
        INSTANCE_NAME: 'ntfs1.example.org',
        SNF_IMAGE_CONFIG: node.configFile,
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(
      r.stderr,
      /completed by detection/,
      'OSFAMILY and ROOT_PARTITION come from the synthesized table',
    );
    assert.ok(!r.stderr.includes('Ntfsdump-pw-6620'), 'no secret in the log');
    const parts = diskPartitions(disk);
    assert.equal(parts.length, 1);
    assert.equal(parts[0]?.start, 2048);
    assert.equal(parts[0]?.type, '7');
    assert.equal((parts[0]?.start ?? 0) + (parts[0]?.size ?? 0), 96 * 2048, 'grown to the disk end');
    const mnt = mkdtempSync(join(tmpdir(), 'snf-ntfsdump-'));
    const umount = mountWindowsDisk(disk, mnt, 2048);
    try {
      const doc = parseUnattend(readFileSync(join(mnt, 'Windows/Panther/unattend.xml'), 'utf8'), 'deployed');
      assert.equal(shellSetupValue(doc, 'amd64', 'ComputerName'), 'ntfs1');
    } finally {
      umount();
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});
