/**
 * The one table of image properties (img_properties, inst_properties): name, type, default,
 * meaning and who reads it. It generates src/schemas/img-properties.schema.json and the
 * README's property table (npm run generate), gives the OsFamily type its values and, with
 * the task table, the valid EXCLUDE_TASK_<Task> names. Pure data: the host imports it too.
 */
import type { TaskName } from './task-specs.ts';

/**
 * How a property's value is written: each kind is one schema rule and one line of the
 * README. `flag`: yes/no (also true/false, on/off, 1/0, a JSON boolean).
 */
type PropertyType =
  | { kind: 'flag' }
  | { kind: 'family' }
  | { kind: 'partition' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'pattern'; pattern: string; form: string };

/** Who reads a property: tasks by name, or a stage outside the task table. */
type Reader = TaskName | 'host' | 'detection' | 'every task' | 'custom programs' | 'nothing';

export interface PropertySpec {
  name: string;
  type: PropertyType;
  /** What applies when the property is not given. */
  default: string;
  meaning: string;
  readBy: readonly Reader[];
}

const flag: PropertyType = { kind: 'flag' };

export const PROPERTIES = [
  {
    name: 'OSFAMILY',
    type: { kind: 'family' },
    default: 'detected',
    meaning: 'the OS family of the image; decides which tasks apply',
    readBy: ['host', 'detection', 'every task'],
  },
  {
    name: 'ROOT_PARTITION',
    type: { kind: 'partition' },
    default: 'detected',
    meaning: 'number of the partition holding the root filesystem',
    readBy: ['detection', 'MountImage', 'FilesystemResizeMounted'],
  },
  {
    name: 'USERS',
    type: {
      kind: 'pattern',
      pattern: '^\\s*[A-Za-z0-9_][A-Za-z0-9_.$-]*(\\s+[A-Za-z0-9_][A-Za-z0-9_.$-]*)*\\s*$',
      form: 'user names separated by spaces',
    },
    default: 'root (Windows: Administrator)',
    meaning: 'the users whose password is set and who get auth_keys',
    readBy: ['ChangePassword', 'InitializeDatasource'],
  },
  {
    name: 'PASSWD_HASHING_METHOD',
    type: { kind: 'enum', values: ['md5', 'sha1', 'blowfish', 'sha256', 'sha512', 'yescrypt'] },
    default: 'yescrypt where the guest supports it, else sha512 (BSD: per family)',
    meaning: 'how img_passwd is hashed',
    readBy: ['ChangePassword', 'InitializeDatasource'],
  },
  {
    name: 'SWAP',
    type: {
      kind: 'pattern',
      pattern: '^(?:[1-9][0-9]*:[1-9][0-9]*|[b-z])$',
      form: '<partition number>:<size in MB> or a disk letter b-z',
    },
    default: 'no swap',
    meaning: '`<n>:<MB>`: a swap partition `<n>` carved at the disk end; a letter: the whole instance disk',
    readBy: ['FixPartitionTable', 'AddSwap', 'InitializeDatasource'],
  },
  {
    name: 'CUSTOM_TASK',
    type: { kind: 'pattern', pattern: '^[A-Za-z0-9+/\\s]*={0,2}\\s*$', form: 'base64' },
    default: 'none',
    meaning: 'a program (base64) run in the helper with the guest mounted',
    readBy: ['RunCustomTask'],
  },
  {
    name: 'DO_SYNC',
    type: flag,
    default: 'no',
    meaning:
      'accepted for upstream images and ignored: upstream skips fsync during resize2fs unless it is set; here resize2fs always syncs',
    readBy: ['nothing'],
  },
  {
    name: 'IGNORE_UNATTEND',
    type: flag,
    default: 'no',
    meaning:
      "replace the image's own Windows answer file with snf-image's (set by create when os_answer_file is given)",
    readBy: ['InstallUnattend'],
  },
  {
    name: 'OFFLINE_NTFSRESIZE',
    type: flag,
    default: 'no',
    meaning: 'grow NTFS offline with ntfsresize in the helper instead of diskpart at first boot',
    readBy: ['FilesystemResizeMounted', 'FilesystemResizeAfterUmount'],
  },
  {
    name: 'OFFLINE_NTFSRESIZE_NOCHECK',
    type: flag,
    default: 'no',
    meaning: 'let ntfsresize grow a volume that is not cleanly unmounted',
    readBy: ['FilesystemResizeAfterUmount'],
  },
  {
    name: 'ALLOW_MOUNTED_TASK_OVERWRITING',
    type: flag,
    default: 'no',
    meaning: 'let the image replace mounted tasks with `/root/snf-image/helper/overwrite_task_<Task>`',
    readBy: ['custom programs'],
  },
  {
    name: 'CLOUD_INIT',
    type: flag,
    default: 'no',
    meaning: 'cloud-init mode: a NoCloud seed instead of editing the guest (tasks marked so are skipped)',
    readBy: ['host', 'every task'],
  },
  {
    name: 'NM_NETWORKING',
    type: flag,
    default: 'no',
    meaning: 'the guest uses NetworkManager: configure it, whatever else the guest has installed',
    readBy: ['ConfigureNetwork'],
  },
  {
    name: 'EXCLUDE_ALL_TASKS',
    type: flag,
    default: 'no',
    meaning: 'write the image only: the helper VM is not started',
    readBy: ['host'],
  },
  {
    name: 'EXCLUDE_MOUNTED_TASKS',
    type: flag,
    default: 'no',
    meaning: 'skip every task that needs the guest mounted',
    readBy: ['host', 'every task'],
  },
  {
    name: 'EXCLUDE_FILESYSTEMRESIZE_TASKS',
    type: flag,
    default: 'no',
    meaning: 'skip the filesystem resize tasks',
    readBy: ['every task'],
  },
  {
    name: 'SHA256',
    type: { kind: 'pattern', pattern: '^[0-9a-fA-F]{64}$', form: 'a hex digest' },
    default: 'a SHA256SUMS sidecar, if any',
    meaning: 'the sha256 the image must have (checked while it is written)',
    readBy: ['host'],
  },
  {
    name: 'SHA512',
    type: { kind: 'pattern', pattern: '^[0-9a-fA-F]{128}$', form: 'a hex digest' },
    default: 'none',
    meaning: 'the sha512 the image must have (checked while it is written)',
    readBy: ['host'],
  },
] as const satisfies readonly PropertySpec[];

type PropertyName = (typeof PROPERTIES)[number]['name'];

/** The property that excludes task `name`: EXCLUDE_TASK_ and the name upper-cased (names are case-insensitive). */
export function excludeTaskProperty<N extends TaskName>(name: N): `EXCLUDE_TASK_${Uppercase<N>}` {
  return `EXCLUDE_TASK_${name.toUpperCase() as Uppercase<N>}`;
}

/**
 * Image properties as the helper and the host read them: upper-case names, string values.
 * Only names of the table and EXCLUDE_TASK_<TASK> can be read (a misspelt name does not
 * compile); other names the image gives are its own, seen by custom programs as
 * PROPERTY_<NAME> (through Object.entries).
 */
export type ImageProperties = { [K in PropertyName | `EXCLUDE_TASK_${Uppercase<TaskName>}`]?: string };
