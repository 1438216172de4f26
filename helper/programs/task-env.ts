/**
 * The environment of the programs that stand in for upstream's configuration tasks: the
 * administrator's CUSTOM_TASK and the image's overwrite_task_<Task>. It is upstream
 * snf-image 0.23's "Configuration Tasks Environment" (docs/advanced.rst; the rules file
 * written by snf-image-host/common.sh.in create_floppy, snf-image-host/create and
 * snf-image-helper/snf-image-helper.in): every name prefixed with SNF_IMAGE_, plus the
 * unprefixed names this provider gave CUSTOM_TASK before (TARGET, HOSTNAME, DEV_<i>,
 * PROPERTY_<NAME>, ...).
 *
 * Withheld, unlike upstream: the secrets (PASSWD, PASSWD_HASH, AUTH_KEYS, CLOUD_USERDATA,
 * OS_PRODUCT_KEY), the CUSTOM_TASK property itself, UNATTEND / SYSPREPINF (paths to the
 * helper's own files, which the sandbox does not show), PROPERTIES / INST_PROPERTIES (the
 * raw JSON: PROPERTY_<NAME> carries every property, instance ones applied), and a
 * PERSONALITY larger than PERSONALITY_ENV_LIMIT (an environment string is limited by the
 * kernel).
 */
import type { HelperContext } from '../context.ts';

/** Properties that are not passed on as PROPERTY_<NAME>. */
const WITHHELD_PROPERTIES = new Set(['CUSTOM_TASK']);
/** Bytes of img_personality JSON that still go into SNF_IMAGE_PERSONALITY. */
export const PERSONALITY_ENV_LIMIT = 64 * 1024;

type EnvContext = Pick<HelperContext, 'target' | 'disks' | 'properties' | 'config' | 'resizedPartition'>;

export interface TaskEnvOptions {
  /** Where the program finds the guest root: the mount point, or "/" for a program chrooted into it. */
  target: string;
  /** Whether the program sees the instance disks (DEV_<i>); the image's chrooted programs do not. */
  disks: boolean;
}

/** NIC_COUNT and NIC_<i>_* as Ganeti gave them to create (OS API 20), from the config document. */
function nicVariables(nics: EnvContext['config']['nics']): Record<string, string> {
  const env: Record<string, string> = { NIC_COUNT: String(nics.length) };
  for (const nic of nics) {
    const n = nic.network;
    const fields: Record<string, string | undefined> = {
      MAC: nic.mac,
      IP: nic.ip,
      UUID: nic.uuid,
      NAME: nic.name,
      MODE: nic.mode,
      LINK: nic.link,
      BRIDGE: nic.bridge,
      FRONTEND_TYPE: nic.frontendType,
      NETWORK_NAME: n.name,
      NETWORK_UUID: n.uuid,
      NETWORK_TAGS: n.tags.length > 0 ? n.tags.join(' ') : undefined,
      NETWORK_SUBNET: n.subnet,
      NETWORK_GATEWAY: n.gateway,
      NETWORK_SUBNET6: n.subnet6,
      NETWORK_GATEWAY6: n.gateway6,
      NETWORK_MAC_PREFIX: n.macPrefix,
    };
    for (const [field, value] of Object.entries(fields))
      if (value !== undefined) env[`NIC_${nic.index}_${field}`] = value;
  }
  return env;
}

/** Upstream's RESIZE_PART is a partition number of disk 0 (/dev/vdb1 -> 1); an LVM volume has none. */
function partitionNumber(node: string | undefined, disk: string | undefined): string | undefined {
  if (!node || !disk || !node.startsWith(disk)) return undefined;
  return /^p?([1-9]\d*)$/.exec(node.slice(disk.length))?.[1];
}

/** img_personality as upstream passed it (a JSON array, contents in base64), when small enough. */
function personalityJson(config: EnvContext['config']): string | undefined {
  if (config.personality.length === 0) return undefined;
  const json = JSON.stringify(config.personality);
  return Buffer.byteLength(json) <= PERSONALITY_ENV_LIMIT ? json : undefined;
}

/** Upstream's task variables without the SNF_IMAGE_ prefix (the prefix is added by taskEnv). */
function upstreamVariables(ctx: EnvContext, options: TaskEnvOptions): Record<string, string> {
  const c = ctx.config;
  const env: Record<string, string> = { TARGET: options.target, HOSTNAME: c.hostname };
  if (options.disks) {
    env.DEV_COUNT = String(ctx.disks.length);
    for (const [i, d] of ctx.disks.entries()) env[`DEV_${i}`] = d;
    if (ctx.disks[0]) env.DEV = ctx.disks[0];
  }
  const resized = partitionNumber(ctx.resizedPartition, ctx.disks[0]);
  if (resized) env.RESIZE_PART = resized;
  if (c.imageFormat) env.TYPE = c.imageFormat;
  const personality = personalityJson(c);
  if (personality) env.PERSONALITY = personality;
  Object.assign(env, nicVariables(c.nics), {
    DHCP_TAGS: c.network.dhcpTags.join(' '),
    STATEFUL_DHCPV6_TAGS: c.network.statefulDhcpv6Tags.join(' '),
    STATELESS_DHCPV6_TAGS: c.network.statelessDhcpv6Tags.join(' '),
    DEFAULT_NIC_CONFIG: c.network.defaultNicConfig,
  });
  if (c.cloudInitDebug) env.CLOUD_INIT_DEBUG = 'yes';
  for (const [name, value] of Object.entries(ctx.properties))
    if (!WITHHELD_PROPERTIES.has(name)) env[`PROPERTY_${name}`] = value;
  return env;
}

/**
 * The program's environment: every upstream variable as SNF_IMAGE_<NAME>, and the earlier
 * unprefixed names (TARGET, HOSTNAME, DEV_COUNT, DEV, DEV_<i>, RESIZE_PART, PROPERTY_<NAME>).
 * No secret is in it.
 */
export function taskEnv(ctx: EnvContext, options: TaskEnvOptions): Record<string, string> {
  const upstream = upstreamVariables(ctx, options);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(upstream)) env[`SNF_IMAGE_${name}`] = value;
  env.TARGET = options.target;
  env.HOSTNAME = ctx.config.hostname;
  if (options.disks) {
    env.DEV_COUNT = String(ctx.disks.length);
    // This provider's DEV listed every disk; upstream's SNF_IMAGE_DEV is disk 0 only.
    env.DEV = ctx.disks.join(' ');
    for (const [i, d] of ctx.disks.entries()) env[`DEV_${i}`] = d;
  }
  // This provider's RESIZE_PART named the grown partition's device.
  if (ctx.resizedPartition) env.RESIZE_PART = ctx.resizedPartition;
  for (const [name, value] of Object.entries(upstream)) if (name.startsWith('PROPERTY_')) env[name] = value;
  return env;
}
