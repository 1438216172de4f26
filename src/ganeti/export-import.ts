/**
 * `export` and `import`: move one instance disk losslessly through Ganeti's pipe. export
 * writes the disk to stdout (and its size to EXP_SIZE_FD); import writes stdin to the disk
 * and refuses more data than the disk holds.
 */
import { writeSync } from 'node:fs';
import { inspectDisk, openDiskForWrite } from '../disk/disk-target.ts';
import { copyDiskToStream, copyStreamToDisk } from '../disk/stream-copy.ts';
import { log } from '../log/logger.ts';
import { UserError } from '../util/errors.ts';
import type { ScriptContext } from './context.ts';

function transferPath(diskPath: string | undefined, diskUri: string | undefined, what: string): string {
  if (diskPath !== undefined) return diskPath;
  throw new UserError(
    `${what}: userspace-only disks (${diskUri ?? 'no path'}) are not supported; use a disk template with a node path`,
  );
}

export async function runExport(ctx: ScriptContext): Promise<void> {
  const t = ctx.env.export;
  if (!t) throw new UserError('EXPORT_DISK_PATH: missing');
  const disk = inspectDisk(transferPath(t.diskPath, t.diskUri, 'EXPORT_DISK_PATH'), 'EXPORT_DISK_PATH');
  if (t.sizeFd !== undefined) {
    try {
      writeSync(t.sizeFd, `${disk.sizeBytes}\n`);
    } catch (error) {
      log().warn({ fd: t.sizeFd, err: (error as Error).message }, 'cannot write the export size to EXP_SIZE_FD');
    }
  }
  log().info(
    { disk: disk.path, index: t.index, bytes: disk.sizeBytes, instance: ctx.env.instance?.name },
    'exporting disk',
  );
  const started = Date.now();
  const bytes = await copyDiskToStream(disk.path, disk.sizeBytes, process.stdout);
  log().info({ bytes, seconds: (Date.now() - started) / 1000 }, 'export finished');
}

export async function runImport(ctx: ScriptContext): Promise<void> {
  const t = ctx.env.import;
  if (!t) throw new UserError('IMPORT_DISK_PATH: missing');
  const disk = inspectDisk(transferPath(t.diskPath, t.diskUri, 'IMPORT_DISK_PATH'), 'IMPORT_DISK_PATH');
  log().info(
    { disk: disk.path, index: t.index, bytes: disk.sizeBytes, instance: ctx.env.instance?.name },
    'importing disk',
  );
  const started = Date.now();
  const handle = await openDiskForWrite(disk.path);
  try {
    const bytes = await copyStreamToDisk(process.stdin, handle, disk.sizeBytes, 'IMPORT_DISK_PATH');
    log().info({ bytes, seconds: (Date.now() - started) / 1000 }, 'import finished');
    if (bytes < disk.sizeBytes)
      log().info(
        { missing: disk.sizeBytes - bytes },
        'the dump was smaller than the disk; the rest of the disk was left as it was',
      );
  } finally {
    await handle.close();
  }
}
