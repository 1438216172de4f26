/**
 * ftp(s):// images from a real FTP server: Debian's vsftpd on 127.0.0.1, started here with
 * its own configuration (anonymous, and a local user with a password made for the test),
 * and the built binary's `create` run with Ganeti's clean environment (env -i). An image is
 * deployed anonymously and as the user; a connection dropped in the middle (the server's
 * session processes killed) is resumed with REST, not started over; FTPS (implicit TLS)
 * trusts HTTPS_CA_FILE and refuses an unknown CA; a wrong password is one line. The
 * password is never on any command line (every /proc/PID/cmdline is watched during the
 * run), in curl's environment or in the log.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { BINARY, binaryMissingReason, notRootReason, runScript } from '../support/binary.ts';
import { makeNode } from '../support/node-fixture.ts';
import { SecretWatch } from '../support/secret-watch.ts';
import { TestCa } from '../support/test-ca.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const MiB = 1024 * 1024;

function missingTool(tool: string): string | false {
  return ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, tool)))
    ? false
    : `needs ${tool} (apt-get install ${tool})`;
}

const skip =
  binaryMissingReason() ||
  notRootReason() ||
  missingTool('vsftpd') ||
  missingTool('openssl') ||
  missingTool('curl') ||
  missingTool('useradd');

const dir = mkdtempSync(join(tmpdir(), 'snf-ftp-'));
const root = join(dir, 'srv');
const image = randomBytes(8 * MiB);
image[510] = 0x55;
image[511] = 0xaa;
const imageSha = createHash('sha256').update(image).digest('hex');
const user = `snfftp${randomBytes(3).toString('hex')}`;
const password = `pw-${randomBytes(12).toString('hex')}`;
let userMade = false;

interface Ftpd {
  port: number;
  child: ChildProcess;
  log: string;
}
const servers: Ftpd[] = [];
let plain: Ftpd;
let slow: Ftpd;
let tls: Ftpd;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Resolves when the server takes connections and, unless it speaks TLS first (implicit
 * FTPS), greets with 220.
 */
async function ready(port: number, greets: boolean): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.setTimeout(2000, () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('connect', () => {
        if (greets) return;
        socket.destroy();
        resolve(true);
      });
      socket.once('data', (d) => {
        socket.destroy();
        resolve(d.toString().startsWith('220'));
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`vsftpd on port ${port} does not answer`);
}

/** A vsftpd of its own on 127.0.0.1: anonymous (the image directory) and local users (the same directory). */
async function startFtpd(name: string, extra: string[]): Promise<Ftpd> {
  const port = await freePort();
  const log = join(dir, `${name}.log`);
  const config = join(dir, `${name}.conf`);
  writeFileSync(
    config,
    [
      'listen=YES',
      'listen_ipv6=NO',
      'listen_address=127.0.0.1',
      `listen_port=${port}`,
      'background=NO',
      'anonymous_enable=YES',
      `anon_root=${root}`,
      'no_anon_password=YES',
      'local_enable=YES',
      `local_root=${root}`,
      'write_enable=NO',
      'pam_service_name=vsftpd',
      `secure_chroot_dir=${join(dir, 'empty')}`,
      'seccomp_sandbox=NO',
      `vsftpd_log_file=${log}`,
      'log_ftp_protocol=YES',
      'xferlog_enable=YES',
      'xferlog_std_format=NO',
      ...extra,
      '',
    ].join('\n'),
  );
  const child = spawn('vsftpd', [config], { stdio: 'ignore' });
  const ftpd = { port, child, log };
  servers.push(ftpd);
  await ready(port, !extra.includes('implicit_ssl=YES'));
  return ftpd;
}

/** Every process below `pid` (vsftpd's per-connection processes). */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parents)
      if (parent === p) {
        out.push(child);
        walk(child);
      }
  };
  walk(pid);
  return out;
}

async function create(imgId: string, conf = '', onSpawn?: (pid: number) => void) {
  const node = makeNode(`HTTP_RETRIES=3\nHTTP_TIMEOUT=10\n${conf}`);
  const disk = join(node.root, 'disk0');
  writeFileSync(disk, Buffer.alloc(12 * MiB, 0xff));
  const r = await runScript('create', {
    env: {
      ...CREATE_ENV,
      OSP_IMG_ID: imgId,
      OSP_IMG_FORMAT: 'diskdump',
      OSP_IMG_PROPERTIES: JSON.stringify({ EXCLUDE_ALL_TASKS: 'yes' }),
      DISK_0_PATH: disk,
      SNF_IMAGE_CONFIG: node.configFile,
    },
    ...(onSpawn ? { onSpawn } : {}),
  });
  const deployed = createHash('sha256').update(readFileSync(disk).subarray(0, image.length)).digest('hex') === imageSha;
  rmSync(node.root, { recursive: true, force: true });
  return { ...r, deployed };
}

function oneErrorLine(stderr: string): string {
  const errors = stderr.split('\n').filter((l) => /\bERROR\b/.test(l));
  assert.equal(errors.length, 1, stderr);
  return errors[0] as string;
}

function noPassword(text: string): void {
  assert.ok(
    !text.includes(password),
    text
      .split('\n')
      .filter((l) => l.includes(password))
      .join('\n'),
  );
}

before(async () => {
  if (skip) return;
  chmodSync(dir, 0o755);
  mkdirSync(root, { mode: 0o755 });
  mkdirSync(join(dir, 'empty'), { mode: 0o755 });
  writeFileSync(join(root, 'disk.img'), image, { mode: 0o644 });
  // A local user for the password login (the pam service "vsftpd" wants a shell from /etc/shells).
  execFileSync('useradd', ['-M', '-d', root, '-s', '/bin/sh', user]);
  userMade = true;
  execFileSync('chpasswd', [], { input: `${user}:${password}\n` });
  // The FTPS server's certificate, from a CA made here.
  const ca = new TestCa(dir);
  ca.makeCa('ca', '/CN=snf-image test FTP CA');
  ca.makeServerCert('ftpd', 'ca', 'IP:127.0.0.1', 2, '/CN=127.0.0.1');
  plain = await startFtpd('plain', []);
  // 2 MB/s: a download takes seconds, time enough to drop its connection in the middle.
  slow = await startFtpd('slow', ['anon_max_rate=2000000']);
  tls = await startFtpd('tls', [
    'ssl_enable=YES',
    'implicit_ssl=YES',
    'allow_anon_ssl=YES',
    'force_anon_logins_ssl=YES',
    'force_anon_data_ssl=YES',
    'require_ssl_reuse=NO',
    'ssl_ciphers=HIGH',
    `rsa_cert_file=${join(dir, 'ftpd.pem')}`,
    `rsa_private_key_file=${join(dir, 'ftpd.key')}`,
  ]);
});

after(async () => {
  for (const s of servers) {
    s.child.kill();
    await new Promise((resolve) => (s.child.exitCode === null ? s.child.once('exit', resolve) : resolve(undefined)));
  }
  if (userMade) execFileSync('userdel', [user]);
  rmSync(dir, { recursive: true, force: true });
});

describe('ftp(s) images from vsftpd (built binary, create under env -i)', { skip }, () => {
  it('anonymous download: deployed', async () => {
    const r = await create(`ftp://127.0.0.1:${plain.port}/disk.img`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.deployed, 'the disk holds the image');
  });

  it('a user and password: deployed; the password on no command line, in no log', async () => {
    const watch = new SecretWatch(password, realpathSync(BINARY), 20);
    const r = await create(`ftp://${user}:${password}@127.0.0.1:${plain.port}/disk.img`);
    const report = watch.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.deployed);
    assert.deepEqual(report.leaks, []);
    assert.ok(report.allowedHolders >= 1, 'the watch saw the create process (its environment holds the password)');
    noPassword(r.stderr);
    assert.match(
      readFileSync(plain.log, 'utf8'),
      new RegExp(`\\[${user}\\] OK DOWNLOAD: .*/disk\\.img", ${image.length} bytes`),
    );
  });

  it('a wrong password: one line naming img_id and the reason, no password', async () => {
    const r = await create(`ftp://${user}:wrong-${password}@127.0.0.1:${plain.port}/disk.img`);
    assert.notEqual(r.code, 0);
    assert.match(
      oneErrorLine(r.stderr),
      /ERROR img_id: cannot fetch ftp:\/\/127\.0\.0\.1:\d+\/disk\.img: curl: \(67\) Access denied: 530$/,
    );
    noPassword(r.stderr);
    assert.ok(!r.deployed);
  });

  it('a missing file: one line', async () => {
    const r = await create(`ftp://127.0.0.1:${plain.port}/missing.img`);
    assert.notEqual(r.code, 0);
    assert.match(
      oneErrorLine(r.stderr),
      /ERROR img_id: cannot fetch ftp:\/\/127\.0\.0\.1:\d+\/missing\.img: curl: \(\d+\)/,
    );
  });

  it('a connection dropped in the middle: resumed with REST where it stopped, the image whole', async () => {
    const retrs = () => (readFileSync(slow.log, 'utf8').match(/"RETR disk\.img"/g) ?? []).length;
    const before = retrs();
    let killed: number[] = [];
    const dropper = (async () => {
      // Once the transfer runs, kill the server's processes of that session (control and data connections).
      while (retrs() === before) await sleep(50);
      await sleep(1000);
      killed = descendants(slow.child.pid as number);
      for (const pid of killed) process.kill(pid, 'SIGKILL');
    })();
    const r = await create(`ftp://127.0.0.1:${slow.port}/disk.img`);
    await dropper;
    assert.ok(killed.length > 0, 'a session was dropped');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.deployed, 'the disk holds the image, byte for byte');
    assert.match(
      r.stderr,
      /WARN.*download of ftp:\/\/127\.0\.0\.1:\d+\/disk\.img interrupted \(curl: \(18\).*\); resuming/,
    );
    const rest = [...readFileSync(slow.log, 'utf8').matchAll(/"REST (\d+)"/g)].map((m) => Number(m[1]));
    assert.ok(
      rest.some((n) => n > 0 && n < image.length),
      `the second transfer asked for the rest (REST ${rest.join(', ')})`,
    );
  });

  it('the file replaced on the server before the resumption: one line, not resumed', async () => {
    const retrs = () => (readFileSync(slow.log, 'utf8').match(/"RETR changing\.img"/g) ?? []).length;
    const path = join(root, 'changing.img');
    writeFileSync(path, image, { mode: 0o644 });
    const dropper = (async () => {
      while (retrs() === 0) await sleep(50);
      await sleep(1000);
      for (const pid of descendants(slow.child.pid as number)) process.kill(pid, 'SIGKILL');
      // Another image under the same name (a later modification time: MDTM has seconds).
      writeFileSync(path, randomBytes(image.length), { mode: 0o644 });
      const later = new Date(Date.now() + 60_000);
      utimesSync(path, later, later);
    })();
    const r = await create(`ftp://127.0.0.1:${slow.port}/changing.img`);
    await dropper;
    assert.notEqual(r.code, 0);
    assert.match(
      oneErrorLine(r.stderr),
      /ERROR img_id: ftp:\/\/127\.0\.0\.1:\d+\/changing\.img changed on the server during the download \(size or modification time\); not resumed$/,
    );
  });

  it('FTPS with the CA in HTTPS_CA_FILE: deployed', async () => {
    const r = await create(`ftps://127.0.0.1:${tls.port}/disk.img`, `HTTPS_CA_FILE=${join(dir, 'ca.pem')}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.deployed);
    assert.match(readFileSync(tls.log, 'utf8'), /OK DOWNLOAD: .*"\/disk\.img"/);
  });

  it('FTPS from an unknown CA: one line; HTTPS_VERIFY=no: deployed with a warning', async () => {
    const r = await create(`ftps://127.0.0.1:${tls.port}/disk.img`);
    assert.notEqual(r.code, 0);
    assert.match(
      oneErrorLine(r.stderr),
      /ERROR img_id: cannot fetch ftps:\/\/127\.0\.0\.1:\d+\/disk\.img: curl: \(60\) SSL certificate problem: unable to get local issuer certificate$/,
    );
    const insecure = await create(`ftps://127.0.0.1:${tls.port}/disk.img`, 'HTTPS_VERIFY=no\n');
    assert.equal(insecure.code, 0, insecure.stderr);
    assert.ok(insecure.deployed);
    assert.match(insecure.stderr, /WARN.*HTTPS_VERIFY=no/);
  });
});
