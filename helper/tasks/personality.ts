/**
 * EnforcePersonality: files from img_personality with owner, group and mode; paths resolved
 * inside the guest root, missing parent directories created (0750), owner/group looked up
 * in the guest's passwd and group files.
 */
import { readFileSync } from 'node:fs';
import { isWindowsFamily, osFamily, type HelperContext } from '../context.ts';
import { injectFile } from '../os/windows.ts';
import { TaskError } from '../exec.ts';
import { GuestFs, parseGroup, parsePasswd } from '../guest-files.ts';
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';
import { findDiskBySerial } from '../disks.ts';

type PersonalityFile = ConfigDocument['personality'][number];

function personalityFiles(ctx: HelperContext): PersonalityFile[] {
  const disk = ctx.config.personalityDisk;
  if (!disk) return ctx.config.personality;
  const raw = readFileSync(findDiskBySerial(disk.serial)).subarray(0, disk.bytes);
  return JSON.parse(raw.toString('utf8')) as PersonalityFile[];
}

export async function enforcePersonality(ctx: HelperContext): Promise<void> {
  const files = personalityFiles(ctx);
  if (files.length === 0) return;
  const fs = new GuestFs(ctx.target);
  if (isWindowsFamily(osFamily(ctx))) {
    // NTFS has no Unix owners or modes: files are written as given (upstream's inject-files).
    const now = new Date();
    for (const file of files) {
      injectFile(fs, file.path, Buffer.from(file.contents, 'base64'), now);
      ctx.info(`injected ${file.path}`);
    }
    return;
  }
  const passwd = parsePasswd(fs.readOr('/etc/passwd', ''));
  const groups = parseGroup(fs.readOr('/etc/group', ''));
  const idOf = (name: string | undefined, kind: 'owner' | 'group', path: string): number => {
    if (name === undefined) return 0;
    if (/^\d+$/.test(name)) return Number(name);
    const id = kind === 'owner' ? passwd.find((p) => p.name === name)?.uid : groups.get(name);
    if (id === undefined) throw new TaskError(`personality file ${path}: ${kind} ${name} does not exist in the image`);
    return id;
  };
  for (const file of files) {
    const uid = idOf(file.owner, 'owner', file.path);
    const gid = idOf(file.group, 'group', file.path);
    const parent = file.path.slice(0, file.path.lastIndexOf('/')) || '/';
    fs.mkdirp(parent, 0o750, 0, 0);
    fs.write(file.path, Buffer.from(file.contents, 'base64'), { mode: file.mode ?? 0o440, uid, gid });
    ctx.info(`injected ${file.path}`);
  }
}
