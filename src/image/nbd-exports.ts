/**
 * The image file and the instance disk, served to an unprivileged qemu-img over NBD by a
 * root qemu-storage-daemon that only moves bytes: the image is exported read-only as it is
 * (no format driver: nothing of it is parsed as root), the disk writable. Both are opened
 * here and handed to the daemon as file descriptors (/dev/fd/3, /dev/fd/4); the daemon
 * listens on a socket in a private directory (0700), this process connects to both exports
 * and the converter gets the connected sockets as inherited descriptors: it needs access
 * to nothing by name. The daemon is killed with this process (setpriv --pdeathsig).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { registerCleanup } from '../util/cleanup.ts';
import { UserError } from '../util/errors.ts';

export interface NbdExports {
  /** Connected to the image export (read-only). */
  image: Socket;
  /** Connected to the disk export (writable). */
  disk: Socket;
  /** Stops the daemon (after the converter is done) and removes its directory. */
  close(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** A value inside a QEMU option string: commas are doubled. */
const optionValue = (text: string) => text.replace(/,/g, ',,');

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('close', (code) => resolve(code));
  });
}

/** A connection to one export, paused so that not a byte of the NBD handshake is read here. */
function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    socket.pause();
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

export async function exportImageAndDisk(imagePath: string, diskPath: string): Promise<NbdExports> {
  const dir = await mkdtemp(join(tmpdir(), 'snf-image-nbd-'));
  const handles: FileHandle[] = [];
  let daemon: ChildProcess | undefined;
  const sockets: Socket[] = [];
  let stderr = '';
  const close = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    if (daemon) {
      const done = exited(daemon);
      daemon.kill('SIGTERM');
      const stop = setTimeout(() => daemon?.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await done;
      clearTimeout(stop);
    }
    for (const handle of handles) await handle.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  // However snf-image ends (a signal included), the daemon is stopped before it exits.
  const guard = registerCleanup('qemu-storage-daemon', close, { sync: () => daemon?.kill('SIGKILL') });
  try {
    const image = await open(imagePath, 'r');
    handles.push(image);
    const disk = await open(diskPath, 'r+');
    handles.push(disk);
    const diskDriver = (await disk.stat()).isBlockDevice() ? 'host_device' : 'file';
    const socketPath = join(dir, 'nbd.sock');
    const pidFile = join(dir, 'daemon.pid');
    // The pid file is written once the exports and the NBD server exist (documented order).
    daemon = spawn(
      'setpriv',
      [
        '--pdeathsig=KILL',
        '--',
        'qemu-storage-daemon',
        '--blockdev',
        'driver=file,node-name=image,filename=/dev/fd/3,read-only=on,cache.direct=on',
        '--blockdev',
        `driver=${diskDriver},node-name=disk,filename=/dev/fd/4,cache.direct=on`,
        '--nbd-server',
        `addr.type=unix,addr.path=${optionValue(socketPath)},max-connections=2`,
        '--export',
        'type=nbd,id=image,node-name=image,name=image',
        '--export',
        'type=nbd,id=disk,node-name=disk,name=disk,writable=on',
        '--pidfile',
        pidFile,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe', image.fd, disk.fd],
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      },
    );
    daemon.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    const spawnFailure = new Promise<Error>((resolve) => daemon?.once('error', resolve));
    const started = Date.now();
    while (!existsSync(pidFile)) {
      if (daemon.exitCode !== null || daemon.signalCode !== null) {
        throw new UserError(
          `img_id: qemu-storage-daemon could not serve the image and the disk: ${stderr.trim().split('\n').pop() ?? `exit ${daemon.exitCode ?? daemon.signalCode}`}`,
        );
      }
      const failed = await Promise.race([spawnFailure, sleep(10).then(() => undefined)]);
      if (failed)
        throw new UserError(
          `img_id: cannot run qemu-storage-daemon (package qemu-system-common or qemu-storage-daemon): ${failed.message}`,
        );
      if (Date.now() - started > READY_TIMEOUT_MS)
        throw new UserError('img_id: qemu-storage-daemon did not start serving the image and the disk');
    }
    sockets.push(await connect(socketPath), await connect(socketPath));
    return { image: sockets[0] as Socket, disk: sockets[1] as Socket, close: () => guard.run() };
  } catch (error) {
    await guard.run();
    throw error;
  }
}
