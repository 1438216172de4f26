/**
 * What the helper learns from a mounted Windows volume: where the registry hives are, the
 * NT version (Vista and later: windows; XP / 2003: windows-legacy), the processor
 * architecture, the current control set, and whether the image was generalized by sysprep.
 */
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TaskError } from '../exec.ts';
import type { OsFamily } from '../context.ts';
import { readDword, readString } from './hive.ts';
import type { WindowsArch } from './unattend.ts';

export interface WindowsHives {
  system: string;
  software: string;
  sam: string;
}

export interface WindowsInfo {
  family: Extract<OsFamily, 'windows' | 'windows-legacy'>;
  /** NT version, e.g. 6.1 (Windows 7), 10.0, 5.1 (XP). */
  version: string;
  arch: WindowsArch;
  /** Name of the current control set, e.g. ControlSet001. */
  controlSet: string;
  hives: WindowsHives;
}

/**
 * Host path of a guest path, matching every component case-insensitively (or undefined).
 * A symbolic link (an NTFS reparse point) on the way is refused: the registry and answer
 * files are read and written through these paths, never outside the guest.
 */
export function findCaseInsensitive(root: string, ...names: string[]): string | undefined {
  let current = root;
  for (const name of names) {
    if (!existsSync(current)) return undefined;
    const found = readdirSync(current).find((e) => e.toLowerCase() === name.toLowerCase());
    if (found === undefined) return undefined;
    current = join(current, found);
    if (lstatSync(current).isSymbolicLink())
      throw new TaskError(`${current.slice(root.length)} in the Windows image is a link; snf-image does not follow it`);
  }
  return current;
}

export function hivePaths(root: string): WindowsHives {
  const hive = (name: string) => {
    const path = findCaseInsensitive(root, 'Windows', 'System32', 'config', name);
    if (!path) throw new TaskError(`the Windows image has no registry hive Windows/System32/config/${name}`);
    // The hivex tools open it by name: a FIFO or device node would hang them or reach outside the image.
    if (!lstatSync(path).isFile())
      throw new TaskError(`the Windows image's registry hive Windows/System32/config/${name} is not a regular file`);
    return path;
  };
  return { system: hive('SYSTEM'), software: hive('SOFTWARE'), sam: hive('SAM') };
}

const CURRENT_VERSION = '\\Microsoft\\Windows NT\\CurrentVersion';

/** The NT version from the SOFTWARE hive (CurrentMajor/MinorVersionNumber on 10 and later). */
export async function ntVersion(software: string): Promise<string> {
  const major = await readDword(software, CURRENT_VERSION, 'CurrentMajorVersionNumber');
  if (major !== undefined)
    return `${major}.${(await readDword(software, CURRENT_VERSION, 'CurrentMinorVersionNumber')) ?? 0}`;
  const version = await readString(software, CURRENT_VERSION, 'CurrentVersion');
  if (!version || !/^\d+\.\d+$/.test(version))
    throw new TaskError(
      `the Windows image has no usable CurrentVersion in SOFTWARE${CURRENT_VERSION} (${version ?? 'missing'})`,
    );
  return version;
}

export function familyOfVersion(version: string): WindowsInfo['family'] {
  return Number(version.split('.')[0]) < 6 ? 'windows-legacy' : 'windows';
}

export async function inspectWindows(root: string): Promise<WindowsInfo> {
  const hives = hivePaths(root);
  const version = await ntVersion(hives.software);
  const current = await readDword(hives.system, '\\Select', 'Current');
  if (current === undefined)
    throw new TaskError('the Windows image has no current control set (SYSTEM\\Select\\Current)');
  const controlSet = `ControlSet${String(current).padStart(3, '0')}`;
  const arch = await readString(
    hives.system,
    `\\${controlSet}\\Control\\Session Manager\\Environment`,
    'PROCESSOR_ARCHITECTURE',
  );
  if (!arch || !['amd64', 'x86'].includes(arch.toLowerCase()))
    throw new TaskError(
      `the Windows image has PROCESSOR_ARCHITECTURE ${arch ?? '(missing)'}; only AMD64 and x86 are supported`,
    );
  return { family: familyOfVersion(version), version, arch: arch.toLowerCase() as WindowsArch, controlSet, hives };
}

const GENERALIZED = ['IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE', 'IMAGE_STATE_GENERALIZE_RESEAL_TO_AUDIT'];

/** Refuses an image sysprep did not generalize (Windows would not run the answer file). */
export async function checkSysprepped(info: WindowsInfo): Promise<void> {
  if (info.family === 'windows') {
    const state = await readString(
      info.hives.software,
      '\\Microsoft\\Windows\\CurrentVersion\\Setup\\State',
      'ImageState',
    );
    if (!state || !GENERALIZED.includes(state))
      throw new TaskError(
        `the Windows image is not generalized (ImageState is ${state ?? 'missing'}, not IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE): run sysprep /generalize /oobe /shutdown before taking the image`,
      );
    return;
  }
  const setup = await readDword(info.hives.system, '\\Setup', 'SystemSetupInProgress');
  const mini = await readDword(info.hives.system, '\\Setup', 'MiniSetupInProgress');
  if (setup !== 1 || mini !== 1)
    throw new TaskError(
      `the Windows image is not sysprepped (SYSTEM\\Setup SystemSetupInProgress=${setup ?? 'missing'}, MiniSetupInProgress=${mini ?? 'missing'}; both must be 1): run sysprep -mini -reseal before taking the image`,
    );
}

export function checkFamily(info: WindowsInfo, declared: string | undefined): void {
  if (declared !== undefined && declared !== info.family)
    throw new TaskError(`OSFAMILY is ${declared}, but the image is Windows NT ${info.version} (${info.family})`);
}
