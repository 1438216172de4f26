/**
 * Ganeti's OS API 20 environment, parsed into typed values with zod.
 *
 * Set-but-empty and unset are kept apart: an unset variable is `undefined`, a set one is a
 * string (possibly ''). Every error names the variable and the rule it broke.
 */
import { z } from 'zod';
import { ValidationError } from '../util/errors.ts';

export type Env = Readonly<Record<string, string | undefined>>;

export type ScriptName = 'create' | 'import' | 'export' | 'rename' | 'verify';

interface CoreEnv {
  apiVersion: 10 | 15 | 20;
  osName: string;
  /** '' when the OS has no variants; undefined when unset. */
  variant: string | undefined;
  debugLevel: number;
  /** Every OSP_* variable, keyed by lower-case parameter name ('img_id'). */
  osParams: ReadonlyMap<string, string>;
}

interface DiskEnv {
  index: number;
  path: string | undefined;
  uri: string | undefined;
  access: 'rw' | 'ro' | undefined;
  uuid: string | undefined;
  name: string | undefined;
  /** Size in MiB (Ganeti 3.0+). */
  sizeMiB: number | undefined;
  frontendType: string | undefined;
  backendType: string | undefined;
}

interface NicEnv {
  index: number;
  mac: string;
  uuid: string | undefined;
  name: string | undefined;
  ip: string | undefined;
  mode: string | undefined;
  link: string | undefined;
  bridge: string | undefined;
  frontendType: string | undefined;
  network: {
    name: string | undefined;
    uuid: string | undefined;
    tags: string[];
    subnet: string | undefined;
    gateway: string | undefined;
    subnet6: string | undefined;
    gateway6: string | undefined;
    macPrefix: string | undefined;
  };
}

export interface InstanceEnv {
  name: string;
  os: string | undefined;
  uuid: string | undefined;
  ctime: number | undefined;
  mtime: number | undefined;
  primaryNode: string | undefined;
  secondaryNodes: string[];
  hypervisor: string | undefined;
  reinstall: boolean;
  hvParams: Readonly<Record<string, string>>;
  beParams: Readonly<Record<string, string>>;
  disks: DiskEnv[];
  nics: NicEnv[];
}

interface TransferEnv {
  index: number;
  diskPath: string | undefined;
  diskUri: string | undefined;
  /** File descriptor to write the expected byte count to (EXP_SIZE_FD). */
  sizeFd: number | undefined;
}

export interface GanetiEnv {
  script: ScriptName;
  core: CoreEnv;
  instance: InstanceEnv | undefined;
  oldInstanceName: string | undefined;
  export: TransferEnv | undefined;
  import: TransferEnv | undefined;
}

const wholeNumber = z.string().regex(/^\d+$/, { error: 'must be a whole number' }).transform(Number);
/** Ganeti gives an instance at most 16 disks and 8 NICs; each one counted is parsed, so the counts are bounded. */
const MAX_DEVICES = 64;
const deviceCount = wholeNumber.refine((n) => n <= MAX_DEVICES, { error: `must be at most ${MAX_DEVICES}` });
const positiveNumber = z
  .string()
  .regex(/^[0-9]+(\.[0-9]+)?$/, { error: 'must be a number' })
  .transform(Number);
const nonEmpty = z.string().min(1, { error: 'must not be empty' });
const macAddress = z
  .string()
  .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, { error: 'must be a MAC address like aa:00:00:12:34:56' })
  .transform((m) => m.toLowerCase());
const absolutePath = z.string().regex(/^\//, { error: 'must be an absolute path' });
const fdNumber = z.string().regex(/^\d+$/, { error: 'must be a file descriptor number' }).transform(Number);

const coreSchema = z.object({
  OS_API_VERSION: z.enum(['10', '15', '20'], { error: 'must be 10, 15 or 20' }).transform(Number),
  OS_NAME: nonEmpty,
  OS_VARIANT: z.string().optional(),
  DEBUG_LEVEL: wholeNumber.optional(),
});

const instanceSchema = z.object({
  INSTANCE_NAME: nonEmpty,
  INSTANCE_OS: z.string().optional(),
  INSTANCE_UUID: z.string().optional(),
  INSTANCE_CTIME: positiveNumber.optional(),
  INSTANCE_MTIME: positiveNumber.optional(),
  INSTANCE_PRIMARY_NODE: z.string().optional(),
  INSTANCE_SECONDARY_NODES: z.string().optional(),
  INSTANCE_REINSTALL: z.enum(['0', '1', ''], { error: 'must be 1 when set' }).optional(),
  HYPERVISOR: z.string().optional(),
  DISK_COUNT: deviceCount,
  NIC_COUNT: deviceCount.optional(),
});

const diskSchema = (i: number) =>
  z.object({
    [`DISK_${i}_PATH`]: absolutePath.optional(),
    [`DISK_${i}_URI`]: nonEmpty.optional(),
    [`DISK_${i}_ACCESS`]: z.enum(['rw', 'ro'], { error: 'must be rw or ro' }).optional(),
    [`DISK_${i}_UUID`]: z.string().optional(),
    [`DISK_${i}_NAME`]: z.string().optional(),
    [`DISK_${i}_SIZE`]: wholeNumber.optional(),
    [`DISK_${i}_FRONTEND_TYPE`]: z.string().optional(),
    [`DISK_${i}_BACKEND_TYPE`]: z.string().optional(),
  });

const nicSchema = (i: number) =>
  z.object({
    [`NIC_${i}_MAC`]: macAddress,
    [`NIC_${i}_UUID`]: z.string().optional(),
    [`NIC_${i}_NAME`]: z.string().optional(),
    [`NIC_${i}_IP`]: z.string().optional(),
    [`NIC_${i}_MODE`]: z
      .enum(['bridged', 'routed', 'openvswitch'], { error: 'must be bridged, routed or openvswitch' })
      .optional(),
    [`NIC_${i}_LINK`]: z.string().optional(),
    [`NIC_${i}_BRIDGE`]: z.string().optional(),
    [`NIC_${i}_FRONTEND_TYPE`]: z.string().optional(),
    [`NIC_${i}_NETWORK_NAME`]: z.string().optional(),
    [`NIC_${i}_NETWORK_UUID`]: z.string().optional(),
    [`NIC_${i}_NETWORK_TAGS`]: z.string().optional(),
    [`NIC_${i}_NETWORK_SUBNET`]: z.string().optional(),
    [`NIC_${i}_NETWORK_GATEWAY`]: z.string().optional(),
    [`NIC_${i}_NETWORK_SUBNET6`]: z.string().optional(),
    [`NIC_${i}_NETWORK_GATEWAY6`]: z.string().optional(),
    [`NIC_${i}_NETWORK_MAC_PREFIX`]: z.string().optional(),
  });

const transferSchema = (prefix: 'EXPORT' | 'IMPORT') =>
  z.object({
    [`${prefix}_INDEX`]: wholeNumber,
    [`${prefix}_DISK_PATH`]: absolutePath.optional(),
    [`${prefix}_DEVICE`]: absolutePath.optional(),
    [`${prefix}_DISK_URI`]: nonEmpty.optional(),
    EXP_SIZE_FD: fdNumber.optional(),
  });

/** Collects zod problems as "VARIABLE: rule" lines instead of throwing at the first one. */
class ProblemCollector {
  readonly problems: string[] = [];

  parse<T extends z.ZodType>(schema: T, env: Env): z.output<T> | undefined {
    const result = schema.safeParse(env);
    if (result.success) return result.data;
    for (const issue of result.error.issues) {
      const variable = String(issue.path[0] ?? '(environment)');
      const message =
        issue.code === 'invalid_type' && env[variable] === undefined ? 'is required but not set' : issue.message;
      this.problems.push(`${variable}: ${message}`);
    }
    return undefined;
  }

  add(problem: string): void {
    this.problems.push(problem);
  }
}

function str(record: Record<string, unknown>, key: string): string | undefined {
  const value = record[key];
  return typeof value === 'string' ? value : undefined;
}

function num(record: Record<string, unknown>, key: string): number | undefined {
  const value = record[key];
  return typeof value === 'number' ? value : undefined;
}

function collectPrefixed(env: Env, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith(prefix) && value !== undefined) out[key.slice(prefix.length)] = value;
  }
  return out;
}

function collectOsParams(env: Env): Map<string, string> {
  const params = new Map<string, string>();
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith('OSP_') && value !== undefined) params.set(key.slice(4).toLowerCase(), value);
  }
  return params;
}

function parseCore(env: Env, problems: ProblemCollector): CoreEnv | undefined {
  const core = problems.parse(coreSchema, env);
  if (!core) return undefined;
  return {
    apiVersion: core.OS_API_VERSION as 10 | 15 | 20,
    osName: core.OS_NAME,
    variant: core.OS_VARIANT,
    debugLevel: core.DEBUG_LEVEL ?? 0,
    osParams: collectOsParams(env),
  };
}

function parseDisks(env: Env, count: number, problems: ProblemCollector): DiskEnv[] {
  const disks: DiskEnv[] = [];
  for (let i = 0; i < count; i++) {
    const d = problems.parse(diskSchema(i), env) as Record<string, unknown> | undefined;
    if (!d) continue;
    disks.push({
      index: i,
      path: str(d, `DISK_${i}_PATH`),
      uri: str(d, `DISK_${i}_URI`),
      access: str(d, `DISK_${i}_ACCESS`) as DiskEnv['access'],
      uuid: str(d, `DISK_${i}_UUID`),
      name: str(d, `DISK_${i}_NAME`),
      sizeMiB: num(d, `DISK_${i}_SIZE`),
      frontendType: str(d, `DISK_${i}_FRONTEND_TYPE`),
      backendType: str(d, `DISK_${i}_BACKEND_TYPE`),
    });
  }
  return disks;
}

function parseNics(env: Env, count: number, problems: ProblemCollector): NicEnv[] {
  const nics: NicEnv[] = [];
  for (let i = 0; i < count; i++) {
    const n = problems.parse(nicSchema(i), env) as Record<string, unknown> | undefined;
    if (!n) continue;
    const p = `NIC_${i}_`;
    nics.push({
      index: i,
      mac: str(n, `${p}MAC`) ?? '',
      uuid: str(n, `${p}UUID`),
      name: str(n, `${p}NAME`),
      ip: str(n, `${p}IP`),
      mode: str(n, `${p}MODE`),
      link: str(n, `${p}LINK`),
      bridge: str(n, `${p}BRIDGE`),
      frontendType: str(n, `${p}FRONTEND_TYPE`),
      network: {
        name: str(n, `${p}NETWORK_NAME`),
        uuid: str(n, `${p}NETWORK_UUID`),
        tags: (str(n, `${p}NETWORK_TAGS`) ?? '').split(/[\s,]+/).filter(Boolean),
        subnet: str(n, `${p}NETWORK_SUBNET`),
        gateway: str(n, `${p}NETWORK_GATEWAY`),
        subnet6: str(n, `${p}NETWORK_SUBNET6`),
        gateway6: str(n, `${p}NETWORK_GATEWAY6`),
        macPrefix: str(n, `${p}NETWORK_MAC_PREFIX`),
      },
    });
  }
  return nics;
}

function parseInstance(env: Env, script: ScriptName, problems: ProblemCollector): InstanceEnv | undefined {
  const inst = problems.parse(instanceSchema, env);
  // Disks and NICs are checked even when an instance variable is bad: report everything at once.
  const count = (name: string) =>
    /^\d+$/.test(env[name] ?? '') && Number(env[name]) <= MAX_DEVICES ? Number(env[name]) : 0;
  const disks = parseDisks(env, count('DISK_COUNT'), problems);
  const nics = parseNics(env, count('NIC_COUNT'), problems);
  if (!inst) return undefined;
  if (script === 'create') {
    if (inst.DISK_COUNT < 1) problems.add('DISK_COUNT: must be at least 1 (snf-image writes the image to disk 0)');
    const disk0 = disks[0];
    if (disk0 && disk0.path === undefined && disk0.uri === undefined)
      problems.add('DISK_0_PATH: is required (or DISK_0_URI for userspace disks) but neither is set');
  }
  return {
    name: inst.INSTANCE_NAME,
    os: inst.INSTANCE_OS,
    uuid: inst.INSTANCE_UUID,
    ctime: inst.INSTANCE_CTIME,
    mtime: inst.INSTANCE_MTIME,
    primaryNode: inst.INSTANCE_PRIMARY_NODE,
    secondaryNodes: (inst.INSTANCE_SECONDARY_NODES ?? '').split(/\s+/).filter(Boolean),
    hypervisor: inst.HYPERVISOR,
    reinstall: inst.INSTANCE_REINSTALL === '1',
    hvParams: collectPrefixed(env, 'INSTANCE_HV_'),
    beParams: collectPrefixed(env, 'INSTANCE_BE_'),
    disks,
    nics,
  };
}

function parseTransfer(env: Env, prefix: 'EXPORT' | 'IMPORT', problems: ProblemCollector): TransferEnv | undefined {
  const t = problems.parse(transferSchema(prefix), env) as Record<string, unknown> | undefined;
  if (!t) return undefined;
  const diskPath = str(t, `${prefix}_DISK_PATH`) ?? str(t, `${prefix}_DEVICE`);
  const diskUri = str(t, `${prefix}_DISK_URI`);
  if (diskPath === undefined && diskUri === undefined) {
    problems.add(`${prefix}_DISK_PATH: is required (or ${prefix}_DEVICE / ${prefix}_DISK_URI) but none is set`);
  }
  return { index: num(t, `${prefix}_INDEX`) ?? 0, diskPath, diskUri, sizeFd: num(t, 'EXP_SIZE_FD') };
}

/**
 * Parses the environment a Ganeti OS script receives. `verify` gets only the core set;
 * the other scripts get the instance set too, plus their own additions.
 */
export function parseGanetiEnv(env: Env, script: ScriptName): GanetiEnv {
  const problems = new ProblemCollector();
  const core = parseCore(env, problems);
  const instance = script === 'verify' ? undefined : parseInstance(env, script, problems);
  let oldInstanceName: string | undefined;
  if (script === 'rename') {
    oldInstanceName = env.OLD_INSTANCE_NAME;
    if (oldInstanceName === undefined || oldInstanceName === '')
      problems.add('OLD_INSTANCE_NAME: is required by rename but not set');
  }
  const exportEnv = script === 'export' ? parseTransfer(env, 'EXPORT', problems) : undefined;
  const importEnv = script === 'import' ? parseTransfer(env, 'IMPORT', problems) : undefined;
  if (core && core.apiVersion !== 20)
    problems.add(`OS_API_VERSION: snf-image implements OS API 20, Ganeti asked for ${core.apiVersion}`);
  if (problems.problems.length > 0 || !core) throw new ValidationError(problems.problems);
  return { script, core, instance, oldInstanceName, export: exportEnv, import: importEnv };
}
