/**
 * Virtual-disk images (qcow2, vmdk, vdi, vhdx) are converted with qemu-img, always with an
 * explicit format, after inspecting them: the header must match the declared format, and a
 * qcow2 with a backing file or an external data file, or a vmdk that names other extent
 * files, is refused (the CVE-2010-3851 class: an image that makes the host read another
 * file). qemu-img info runs under prlimit (memory and CPU caps) because it parses
 * untrusted headers. qemu-img convert, which parses the whole image, runs as HELPER_USER
 * with no privileges, under limits and CONVERT_TIMEOUT, and reaches the image and the disk
 * only through NBD connections it inherits (nbd-exports.ts).
 */
import { spawn } from 'node:child_process';
import { UserError } from '../util/errors.ts';
import { allocatePrivateUid, type UidRange } from '../util/private-uid.ts';
import { describeDetected, detect, readFileHead } from './magic.ts';
import { exportImageAndDisk, type NbdExports } from './nbd-exports.ts';
import {
  resolveUnprivilegedUser,
  unprivilegedArgv,
  type ResourceLimits,
  type UnprivilegedUser,
} from './unprivileged.ts';

export type QemuFormat = 'qcow2' | 'vmdk' | 'vdi' | 'vhdx';

export interface QemuImageInfo {
  virtualSize: number;
}

const PRLIMIT = ['prlimit', '--as=1073741824', '--cpu=30', '--'];
const minimalEnv = () => ({ PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' });

/** Header checks that need no tool: declared format vs content, qcow2 backing/data files. */
export function checkHeader(head: Buffer, declared: QemuFormat): void {
  const found = detect(head);
  const matches = found.kind === 'container' && found.container === declared;
  if (!matches) throw new UserError(`img_format: declared ${declared} but the image is ${describeDetected(found)}`);
  if (declared === 'qcow2') {
    if (head.byteLength < 104) throw new UserError('img_id: the qcow2 header is truncated');
    const backingOffset = head.readBigUInt64BE(8);
    if (backingOffset !== 0n)
      throw new UserError(
        'img_id: the qcow2 image has a backing file; snf-image refuses images that reference other files',
      );
    const version = head.readUInt32BE(4);
    if (version >= 3) {
      const incompatible = head.readBigUInt64BE(72);
      if (incompatible & 0b100n)
        throw new UserError(
          'img_id: the qcow2 image uses an external data file; snf-image refuses images that reference other files',
        );
    }
  }
}

interface InfoJson {
  format?: string;
  'virtual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'format-specific'?: { type?: string; data?: { extents?: Array<{ filename?: string }>; 'data-file'?: string } };
}

export async function inspectQemuImage(path: string, declared: QemuFormat): Promise<QemuImageInfo> {
  const { execa } = await import('execa');
  checkHeader(await readFileHead(path), declared);
  let info: InfoJson;
  try {
    const r = await execa(
      PRLIMIT[0] as string,
      [...PRLIMIT.slice(1), 'qemu-img', 'info', '--output=json', '-f', declared, path],
      { env: minimalEnv(), extendEnv: false },
    );
    info = JSON.parse(r.stdout) as InfoJson;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? (error instanceof Error ? error.message : String(error));
    throw new UserError(`img_id: qemu-img cannot read the ${declared} image: ${stderr.trim().split('\n')[0] ?? ''}`);
  }
  if (info.format !== declared)
    throw new UserError(`img_format: declared ${declared} but qemu-img reads it as ${info.format ?? 'unknown'}`);
  if (info['backing-filename'] || info['full-backing-filename'])
    throw new UserError(
      `img_id: the ${declared} image has a backing file; snf-image refuses images that reference other files`,
    );
  const data = info['format-specific']?.data;
  if (data?.['data-file']) throw new UserError(`img_id: the ${declared} image uses an external data file`);
  const extents = data?.extents ?? [];
  if (extents.some((e) => e.filename !== undefined && e.filename !== path))
    throw new UserError(
      'img_id: the vmdk image references other extent files; only monolithic vmdk images are accepted',
    );
  const virtualSize = info['virtual-size'];
  if (typeof virtualSize !== 'number')
    throw new UserError(`img_id: qemu-img reports no virtual size for the ${declared} image`);
  return { virtualSize };
}

export interface ConvertSandbox {
  /** HELPER_UIDS: qemu-img runs under a uid of its own from this range, when given. */
  uids?: UidRange | undefined;
  /** HELPER_USER: the unprivileged user qemu-img runs as without HELPER_UIDS. */
  user: string;
  /** CONVERT_TIMEOUT: wall-clock limit of the conversion (also its CPU-time limit). */
  timeoutSeconds: number;
}

/**
 * The converter's limits: 1 GiB of address space, as qemu-img info (converting the
 * benchmark's 1.5 GiB qcow2 it stays at 25 MB resident and works within 256 MiB), no file
 * written (its output goes to the NBD socket), few descriptors.
 */
function convertLimits(timeoutSeconds: number): ResourceLimits {
  return {
    addressSpaceBytes: 1024 * 1024 * 1024,
    cpuSeconds: Math.max(1, Math.ceil(timeoutSeconds)),
    fileSizeBytes: 0,
    openFiles: 128,
  };
}

export interface PreparedConversion {
  /** Runs the conversion (once). */
  run(format: QemuFormat, onProgress: (fraction: number) => void): Promise<void>;
  /** Stops the NBD daemon; call it in any case. */
  close(): Promise<void>;
}

/**
 * Everything the conversion needs before it runs, nothing written: HELPER_USER looked up
 * (root and unknown users refused) and the image and the disk served over NBD. The
 * deployment starts it while it inspects the image.
 */
export async function prepareConversion(
  path: string,
  diskPath: string,
  sandbox: ConvertSandbox,
): Promise<PreparedConversion> {
  const [user, served] = await Promise.allSettled([converterUser(sandbox), exportImageAndDisk(path, diskPath)]);
  if (user.status === 'rejected') {
    if (served.status === 'fulfilled') await served.value.close();
    throw user.reason;
  }
  if (served.status === 'rejected') {
    await user.value.release();
    throw served.reason;
  }
  const who = user.value;
  const exports = served.value;
  return {
    run: (format, onProgress) => runConverter(who, exports, format, onProgress, sandbox),
    close: async () => {
      await exports.close();
      await who.release();
    },
  };
}

/** A uid of its own from HELPER_UIDS (released after the conversion), else HELPER_USER. */
async function converterUser(sandbox: ConvertSandbox): Promise<UnprivilegedUser & { release(): Promise<void> }> {
  if (sandbox.uids) {
    const own = await allocatePrivateUid(sandbox.uids);
    return { name: String(own.uid), uid: own.uid, gid: own.uid, release: own.release };
  }
  return {
    ...(await resolveUnprivilegedUser(sandbox.user, 'qemu-img converts images')),
    release: async () => undefined,
  };
}

/**
 * Converts the image onto the disk in place (-n: the disk exists; -W: out-of-order writes,
 * which qemu-img recommends for raw block devices and preallocated files, as instance disks
 * are; -m 16: more requests in flight, which makes up for the NBD hops) as HELPER_USER: the
 * image and the disk are NBD exports of a root qemu-storage-daemon (O_DIRECT on both, as
 * -t none -T none did), and qemu-img gets the two connected sockets as descriptors 3 and 4.
 */
async function runConverter(
  who: UnprivilegedUser,
  exports: NbdExports,
  format: QemuFormat,
  onProgress: (fraction: number) => void,
  sandbox: ConvertSandbox,
): Promise<void> {
  const source = `driver=${format},file.driver=nbd,file.server.type=fd,file.server.str=3,file.export=image`;
  const target = 'driver=raw,file.driver=nbd,file.server.type=fd,file.server.str=4,file.export=disk';
  const argv = unprivilegedArgv(who, convertLimits(sandbox.timeoutSeconds), [
    'qemu-img',
    'convert',
    '-p',
    '-W',
    '-m',
    '16',
    '-n',
    '--image-opts',
    '--target-image-opts',
    source,
    target,
  ]);
  const child = spawn(argv[0] as string, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe', exports.image, exports.disk],
    env: minimalEnv(),
  });
  // The converter holds its own copies of the connections.
  exports.image.destroy();
  exports.disk.destroy();
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
  child.stdout?.on('data', (d: Buffer) => {
    const matches = [...d.toString().matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
    const last = matches.at(-1)?.[1];
    if (last !== undefined) onProgress(Number(last) / 100);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, sandbox.timeoutSeconds * 1000);
  const status = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(timer);
  if (timedOut)
    throw new UserError(
      `img_id: qemu-img did not finish converting the ${format} image within CONVERT_TIMEOUT (${sandbox.timeoutSeconds} s)`,
    );
  if (status.error)
    throw new UserError(`img_id: cannot run the converter (setpriv, prlimit, qemu-img): ${status.error.message}`);
  if (status.code !== 0)
    throw new UserError(
      `img_id: qemu-img could not convert the ${format} image: ${stderr.trim().split('\n').pop() || `exit ${status.code ?? status.signal}`}`,
    );
}

/** prepareConversion, then the conversion, then the daemon stopped. */
export async function convertToDisk(
  path: string,
  format: QemuFormat,
  diskPath: string,
  onProgress: (fraction: number) => void,
  sandbox: ConvertSandbox,
): Promise<void> {
  const prepared = await prepareConversion(path, diskPath, sandbox);
  try {
    await prepared.run(format, onProgress);
  } finally {
    await prepared.close();
  }
}
