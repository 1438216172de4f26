/**
 * `snf-image doctor`: the checks of a node, as one table. Each check says what it found
 * and, when it fails, what to do. Checks that need the configuration are skipped when it
 * does not parse. Everything a check touches comes from DoctorEnvironment, so tests point
 * it at temporary directories and files.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, realpathSync, statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import { loadConfig, type LoadedConfig } from '../config/load.ts';
import type { Settings } from '../config/settings.ts';
import { GANETI_SCRIPTS, listVariants } from '../ganeti/os-definition.ts';
import { renderParametersList } from '../ganeti/os-parameters.ts';
import { helperFiles } from '../helper-vm/helper-files.ts';
import { chooseAccel, qemuVersion } from '../helper-vm/qemu-probe.ts';
import { helperState } from '../helper-vm/update-helper.ts';
import { resolveUnprivilegedUser } from '../image/unprivileged.ts';
import { describeError, UserError } from '../util/errors.ts';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

interface CheckResult {
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do (for warn and fail). */
  fix?: string;
}

/** Ganeti's OS_SEARCH_PATH (pathutils.OS_SEARCH_PATH, fixed at build time): the first directory holding the OS wins. */
const GANETI_OS_SEARCH_PATH = [
  '/srv/ganeti/os',
  '/usr/local/lib/ganeti/os',
  '/usr/lib/ganeti/os',
  '/usr/share/ganeti/os',
] as const;

export interface DoctorEnvironment {
  /** The configuration file (SNF_IMAGE_CONFIG, else the default). */
  configFile: string | undefined;
  /** This snf-image binary; undefined when not running the built executable (from the source tree). */
  binary: string | undefined;
  osSearchPath: readonly string[];
  /** The OS definition's directory name (the Ganeti OS name). */
  osName: string;
  /** Least free space IMAGE_TMP_DIR and IMAGE_CACHE_DIR must have. */
  minFreeBytes: number;
  /** Free bytes of the filesystem holding a path. */
  freeBytes(path: string): number;
  /** Owner the directories must have (root). */
  owner: number;
  kvmDevice: string;
  /** Extra trusted certificates (PEM) for the https check (tests); downloads use Node's default trust. */
  extraCa?: string | undefined;
  httpsTimeoutMs: number;
}

export function defaultDoctorEnvironment(
  configFile: string | undefined,
  binary: string | undefined,
  osName: string,
): DoctorEnvironment {
  return {
    configFile,
    binary,
    osSearchPath: GANETI_OS_SEARCH_PATH,
    osName,
    minFreeBytes: 2 * 1024 ** 3,
    freeBytes: (path) => {
      const s = statfsSync(path);
      return s.bavail * s.bsize;
    },
    owner: 0,
    kvmDevice: '/dev/kvm',
    httpsTimeoutMs: 10_000,
  };
}

/** What the checks share: the environment and the configuration, if it parses. */
interface DoctorContext {
  env: DoctorEnvironment;
  config: LoadedConfig | undefined;
}

interface CheckSpec {
  id: string;
  title: string;
  /** Needs the configuration: skipped when it does not parse. */
  needsConfig: boolean;
  run(ctx: DoctorContext, s: Settings): Promise<CheckResult> | CheckResult;
}

const ok = (detail: string): CheckResult => ({ status: 'ok', detail });
const fail = (detail: string, fix: string): CheckResult => ({ status: 'fail', detail, fix });
const warn = (detail: string, fix: string): CheckResult => ({ status: 'warn', detail, fix });
const skip = (detail: string): CheckResult => ({ status: 'skip', detail });

function variantNames(s: Settings): string[] {
  return listVariants(s.VARIANTS_DIR).filter((v) => existsSync(join(s.VARIANTS_DIR, `${v}.conf`)));
}

function checkConfig(ctx: DoctorContext): CheckResult {
  const file = ctx.env.configFile;
  let config: LoadedConfig;
  try {
    config = loadConfig({ configFile: file });
  } catch (error) {
    return fail(describeError(error), `correct ${file ?? 'the configuration file'} (snf-image.conf(5))`);
  }
  const problems: string[] = [];
  const warnings = [...config.warnings];
  for (const variant of variantNames(config.settings)) {
    try {
      warnings.push(...loadConfig({ configFile: file, variant }).warnings.filter((w) => !warnings.includes(w)));
    } catch (error) {
      problems.push(`variant ${variant}: ${describeError(error)}`);
    }
  }
  const files = config.files.length > 0 ? config.files.join(', ') : 'built-in defaults';
  if (problems.length > 0)
    return fail(problems.join('; '), `correct the variant file in ${config.settings.VARIANTS_DIR}`);
  if (warnings.length > 0) return warn(warnings.join('; '), 'remove or correct those keys');
  return ok(`${files} and ${variantNames(config.settings).length} variant file(s) parse`);
}

async function checkQemu(_ctx: DoctorContext, s: Settings): Promise<CheckResult> {
  try {
    const version = await qemuVersion(s.QEMU);
    return ok(`${s.QEMU}: ${version.text}`);
  } catch (error) {
    return fail(describeError(error), 'apt-get install qemu-system-x86 qemu-utils, or set QEMU');
  }
}

async function checkKvm(ctx: DoctorContext, s: Settings): Promise<CheckResult> {
  if (s.HELPER_ACCEL === 'tcg') return ok('HELPER_ACCEL=tcg: the helper VM runs under TCG (software emulation)');
  if (!existsSync(ctx.env.kvmDevice)) {
    const detail = `no ${ctx.env.kvmDevice}`;
    return s.HELPER_ACCEL === 'kvm'
      ? fail(
          `HELPER_ACCEL=kvm but ${detail}`,
          'load the kvm module (modprobe kvm_intel or kvm_amd) or set HELPER_ACCEL=auto',
        )
      : warn(
          `${detail}: the helper VM runs under TCG (slower)`,
          'enable virtualization (modprobe kvm_intel or kvm_amd)',
        );
  }
  if (s.HELPER_ACCEL === 'kvm') return ok(`HELPER_ACCEL=kvm and ${ctx.env.kvmDevice} exists`);
  let kernel: string;
  try {
    kernel = helperFiles(s.HELPER_DIR).kernel;
  } catch {
    return skip('no helper VM installed to probe with');
  }
  try {
    const version = await qemuVersion(s.QEMU);
    const cache = join(s.HELPER_DIR, 'accel-probe.json');
    const accel = await chooseAccel('auto', s.QEMU, version, kernel, cache, ctx.env.kvmDevice);
    return accel === 'kvm'
      ? ok(`KVM boots the helper kernel (probe cached in ${cache})`)
      : warn(
          `${ctx.env.kvmDevice} exists but KVM does not boot the helper kernel: TCG is used (probe cached in ${cache})`,
          `check the host's KVM (dmesg); delete ${cache} to probe again`,
        );
  } catch (error) {
    return skip(`cannot probe: ${describeError(error)}`);
  }
}

async function checkHelper(ctx: DoctorContext, s: Settings): Promise<CheckResult> {
  const fix = 'run snf-image-update-helper';
  try {
    helperFiles(s.HELPER_DIR);
  } catch (error) {
    return fail(describeError(error).replace(/: run snf-image-update-helper$/, ''), fix);
  }
  if (!ctx.env.binary) return warn(`installed in ${s.HELPER_DIR}; not compared (not the built executable)`, fix);
  const state = await helperState(s.HELPER_DIR, ctx.env.binary);
  if (state.state === 'current') return ok(`${s.HELPER_DIR}, built for this binary (${state.buildTime})`);
  return fail(
    state.state === 'missing' ? `no helper VM in ${s.HELPER_DIR}` : `${s.HELPER_DIR}: ${state.why}`,
    'run snf-image-update-helper (after every upgrade of snf-image)',
  );
}

async function accountIds(database: 'passwd' | 'group'): Promise<Map<number, string>> {
  const { stdout } = await promisify(execFile)('getent', [database], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    maxBuffer: 64 * 1024 * 1024,
  });
  const ids = new Map<number, string>();
  for (const line of stdout.split('\n')) {
    const [name, , id] = line.split(':');
    if (name && id && /^\d+$/.test(id)) ids.set(Number(id), name);
  }
  return ids;
}

async function checkHelperUser(_ctx: DoctorContext, s: Settings): Promise<CheckResult> {
  const range = s.HELPER_UIDS;
  if (!range) {
    try {
      const user = await resolveUnprivilegedUser(s.HELPER_USER, 'the helper VM runs');
      return ok(`HELPER_USER ${s.HELPER_USER} (uid ${user.uid}, gid ${user.gid}); HELPER_UIDS is empty`);
    } catch (error) {
      return fail(describeError(error), `create the user (adduser --system ${s.HELPER_USER}) or set HELPER_UIDS`);
    }
  }
  const taken: string[] = [];
  for (const database of ['passwd', 'group'] as const) {
    try {
      for (const [id, name] of await accountIds(database))
        if (id >= range.first && id <= range.last)
          taken.push(`${database === 'passwd' ? 'user' : 'group'} ${name} (${id})`);
    } catch (error) {
      return fail(`cannot list accounts (getent ${database}: ${describeError(error)})`, 'check NSS');
    }
  }
  const text = `HELPER_UIDS=${range.first}-${range.last}`;
  if (taken.length > 0)
    return fail(
      `${text} holds ids in use: ${taken.slice(0, 5).join(', ')}${taken.length > 5 ? ', ...' : ''}`,
      'choose a range no account or group uses',
    );
  return ok(`${text}: ${range.last - range.first + 1} ids, none used by an account or group`);
}

interface DirectorySpec {
  id: string;
  key: 'IMAGE_DIR' | 'IMAGE_TMP_DIR' | 'IMAGE_CACHE_DIR';
  /** Mode bits the directory must not have. */
  forbiddenMode: number;
  /** A missing directory is created when first needed. */
  createdOnUse: boolean;
  needsFreeSpace: boolean;
  /** Not used with these settings (a reason), or undefined. */
  unused?: (s: Settings) => string | undefined;
}

/** The directories snf-image reads and writes, and what each must be. */
const DIRECTORIES: readonly DirectorySpec[] = [
  { id: 'image-dir', key: 'IMAGE_DIR', forbiddenMode: 0o022, createdOnUse: false, needsFreeSpace: false },
  { id: 'tmp-dir', key: 'IMAGE_TMP_DIR', forbiddenMode: 0o002, createdOnUse: false, needsFreeSpace: true },
  {
    id: 'cache-dir',
    key: 'IMAGE_CACHE_DIR',
    forbiddenMode: 0o077,
    createdOnUse: true,
    needsFreeSpace: true,
    unused: (s) => (s.IMAGE_CACHE ? undefined : 'IMAGE_CACHE=no'),
  },
];

function checkDirectory(spec: DirectorySpec, ctx: DoctorContext, s: Settings): CheckResult {
  const dir = s[spec.key];
  const unused = spec.unused?.(s);
  if (unused) return skip(`${spec.key} not used (${unused})`);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch {
    if (spec.createdOnUse) return ok(`${spec.key} ${dir} does not exist yet (created 0700 on first use)`);
    return fail(`${spec.key} ${dir} does not exist`, `mkdir -m 0755 ${dir} (or set ${spec.key})`);
  }
  if (!st.isDirectory()) return fail(`${spec.key} ${dir} is not a directory`, `set ${spec.key} to a directory`);
  const mode = st.mode & 0o7777;
  const modeText = mode.toString(8).padStart(4, '0');
  // World-writable with the sticky bit (like /var/tmp) is what a shared temporary directory is.
  const sticky = (mode & 0o1000) !== 0 && spec.key === 'IMAGE_TMP_DIR';
  if (st.uid !== ctx.env.owner)
    return fail(`${spec.key} ${dir} is owned by uid ${st.uid}`, `chown ${ctx.env.owner} ${dir}`);
  if ((mode & spec.forbiddenMode) !== 0 && !sticky)
    return fail(
      `${spec.key} ${dir} has mode ${modeText}`,
      `chmod ${(mode & ~spec.forbiddenMode).toString(8).padStart(4, '0')} ${dir}`,
    );
  if (spec.needsFreeSpace) {
    const free = ctx.env.freeBytes(dir);
    const gib = (n: number) => `${(n / 1024 ** 3).toFixed(1)} GiB`;
    if (free < ctx.env.minFreeBytes)
      return fail(
        `${spec.key} ${dir}: ${gib(free)} free, less than ${gib(ctx.env.minFreeBytes)}`,
        `free space there or set ${spec.key}`,
      );
    return ok(`${spec.key} ${dir} (mode ${modeText}, ${gib(free)} free)`);
  }
  return ok(`${spec.key} ${dir} (mode ${modeText})`);
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function checkOsDefinition(ctx: DoctorContext, s: Settings): CheckResult {
  const name = ctx.env.osName;
  const found = ctx.env.osSearchPath.map((d) => join(d, name)).find((d) => existsSync(d));
  const install = `snf-image install-os ${join(ctx.env.osSearchPath[0] ?? '/srv/ganeti/os', name)}`;
  if (!found) return fail(`no OS definition '${name}' in ${ctx.env.osSearchPath.join(', ')}`, `run ${install}`);
  const fix = `run snf-image install-os ${found}`;
  const problems: string[] = [];
  if (readText(join(found, 'ganeti_api_version'))?.trim() !== '20') problems.push('ganeti_api_version is not 20');
  if (readText(join(found, 'parameters.list')) !== renderParametersList())
    problems.push("parameters.list is not this binary's");
  const variants = readText(join(found, 'variants.list'))?.split('\n').filter(Boolean) ?? [];
  const expected = listVariants(s.VARIANTS_DIR);
  if (variants.join(' ') !== expected.join(' '))
    problems.push(`variants.list (${variants.join(' ') || 'none'}) is not VARIANTS_DIR's (${expected.join(' ')})`);
  for (const script of GANETI_SCRIPTS) {
    const path = join(found, script);
    let target: string | undefined;
    try {
      target = readlinkSync(path);
    } catch {
      problems.push(`${script} is not a link to snf-image`);
      continue;
    }
    if (!existsSync(path)) problems.push(`${script} links to ${target}, which does not exist`);
    else if (ctx.env.binary && !sameFile(path, ctx.env.binary))
      problems.push(`${script} links to ${target}, not to ${ctx.env.binary}`);
  }
  if (problems.length > 0) return fail(`${found}: ${problems.join('; ')}`, fix);
  return ok(`${found} (API 20, scripts link to ${ctx.env.binary ?? 'snf-image'})`);
}

/** https image URLs configured as OS parameter presets, in the main file or a variant file. */
function configuredHttpsUrls(ctx: DoctorContext, s: Settings): string[] {
  const urls = new Set<string>();
  const add = (config: LoadedConfig) => {
    for (const [, value] of config.paramDefaults) if (/^https:\/\//i.test(value)) urls.add(value);
  };
  if (ctx.config) add(ctx.config);
  for (const variant of variantNames(s)) {
    try {
      add(loadConfig({ configFile: ctx.env.configFile, variant }));
    } catch {
      // Reported by the configuration check.
    }
  }
  return [...urls];
}

function tlsTrusted(url: URL, env: DoctorEnvironment): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 443),
      servername: /^[\d.]+$|:/.test(url.hostname) ? undefined : url.hostname,
      ...(env.extraCa ? { ca: env.extraCa } : {}),
      timeout: env.httpsTimeoutMs,
    });
    const done = (problem: string | undefined) => {
      socket.destroy();
      resolve(problem);
    };
    socket.once('secureConnect', () => done(socket.authorized ? undefined : String(socket.authorizationError)));
    socket.once('error', (error) => done(error.message));
    socket.once('timeout', () => done(`no TLS handshake within ${env.httpsTimeoutMs / 1000} s`));
  });
}

async function checkHttpsTrust(ctx: DoctorContext, s: Settings): Promise<CheckResult> {
  const urls = configuredHttpsUrls(ctx, s);
  if (urls.length === 0) return skip('no https URL configured (img_id, config_url, os_answer_file presets)');
  const problems: string[] = [];
  for (const text of urls) {
    const url = new URL(text);
    const problem = await tlsTrusted(url, ctx.env);
    if (problem) problems.push(`${url.origin}: ${problem}`);
  }
  if (problems.length > 0)
    return fail(
      problems.join('; '),
      "install the server's CA certificate (NODE_EXTRA_CA_CERTS for snf-image) or fix the server's certificate",
    );
  return ok(`${urls.length} https URL(s): certificates trusted`);
}

/** Every check, in the order printed. */
export const CHECKS: readonly CheckSpec[] = [
  { id: 'config', title: 'configuration and variant files', needsConfig: false, run: checkConfig },
  { id: 'qemu', title: 'QEMU', needsConfig: true, run: checkQemu },
  { id: 'kvm', title: 'KVM boots the helper', needsConfig: true, run: checkKvm },
  { id: 'helper', title: 'helper VM', needsConfig: true, run: checkHelper },
  { id: 'helper-user', title: 'helper user / uids', needsConfig: true, run: checkHelperUser },
  ...DIRECTORIES.map(
    (spec): CheckSpec => ({
      id: spec.id,
      title: spec.key,
      needsConfig: true,
      run: (ctx, s) => checkDirectory(spec, ctx, s),
    }),
  ),
  { id: 'os-definition', title: 'Ganeti OS definition', needsConfig: true, run: checkOsDefinition },
  { id: 'https-trust', title: 'https trust', needsConfig: true, run: checkHttpsTrust },
];

export interface CheckReport extends CheckResult {
  id: string;
  title: string;
}

export async function runChecks(env: DoctorEnvironment, only?: readonly string[]): Promise<CheckReport[]> {
  const unknown = only?.filter((id) => !CHECKS.some((c) => c.id === id)) ?? [];
  if (unknown.length > 0)
    throw new UserError(`--check: no check ${unknown.join(', ')} (checks: ${CHECKS.map((c) => c.id).join(', ')})`);
  let config: LoadedConfig | undefined;
  try {
    config = loadConfig({ configFile: env.configFile });
  } catch {
    config = undefined;
  }
  const ctx: DoctorContext = { env, config };
  const reports: CheckReport[] = [];
  for (const check of CHECKS) {
    if (only && !only.includes(check.id)) continue;
    let result: CheckResult;
    if (check.needsConfig && !config) result = skip('the configuration does not parse');
    else {
      try {
        result = await check.run(ctx, (config as LoadedConfig)?.settings);
      } catch (error) {
        result = fail(`check failed: ${describeError(error)}`, 'report this as a bug');
      }
    }
    reports.push({ id: check.id, title: check.title, ...result });
  }
  return reports;
}

const STATUS_TEXT: Readonly<Record<CheckStatus, string>> = { ok: 'ok', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

/** One line per check: status, title, what was found, and what to do. */
export function renderReport(reports: readonly CheckReport[]): string {
  const width = Math.max(...reports.map((r) => r.title.length));
  const lines = reports.map(
    (r) => `${STATUS_TEXT[r.status].padEnd(4)}  ${r.title.padEnd(width)}  ${r.detail}${r.fix ? ` -> ${r.fix}` : ''}`,
  );
  const failed = reports.filter((r) => r.status === 'fail').length;
  lines.push(
    failed > 0 ? `${failed} of ${reports.length} checks failed` : `no check failed (${reports.length} checks)`,
  );
  return `${lines.join('\n')}\n`;
}

export function doctorExitCode(reports: readonly CheckReport[]): number {
  return reports.some((r) => r.status === 'fail') ? 1 : 0;
}
