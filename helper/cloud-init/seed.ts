/**
 * cloud-init mode (CLOUD_INIT): the NoCloud seed that replaces the file-editing tasks, as a
 * pure function of its inputs. Every document is JSON (valid YAML), so no value can break
 * out of its place. meta-data: instance id, hostname, public keys; user-data: cloud_userdata
 * as given (or an empty cloud-config); vendor-data: password hashes, SSH host-key reset,
 * swap file; the datasource file also has cloud-init set the FQDN as the hostname, as files
 * mode does. A per-once script empties
 * user-data at first boot (upstream's InitializeDatasource does the same). network-config
 * (version 2 from the one network model) only when ConfigureNetwork does not know the
 * guest's network system (upstream's 50ConfigureNetwork: cloud-init's network
 * configuration is the last resort).
 */
import type { NicModel } from '../network/model.ts';
import { networkConfigV2 } from '../network/renderers.ts';

export const SEED_DIR = '/var/lib/cloud/seed/nocloud-net';
export const DATASOURCE_CFG = '/etc/cloud/cloud.cfg.d/98_snf-image-datasource.cfg';
const DEBUG_CFG = '/etc/cloud/cloud.cfg.d/98_snf-image-debug.cfg';
/** Upstream's name and content (tasks/35InitializeDatasource); not executable with CLOUD_INIT_DEBUG, as upstream. */
const CLEAR_USER_DATA = '/var/lib/cloud/scripts/per-once/clear_user_data.sh';

export interface SeedInput {
  instanceId: string;
  hostname: string;
  users: readonly string[];
  /** crypt(3) hash of the password for USERS, already hashed. */
  passwordHash?: string;
  /** authorized_keys text (one key per line). */
  authKeys?: string;
  /** cloud_userdata, decoded. */
  userData?: Buffer;
  /** SWAP=<n>:<MB> becomes a swap file of that size. */
  swapMiB?: number;
  debug: boolean;
}

export interface SeedFile {
  path: string;
  content: string | Buffer;
  mode: number;
}

const cloudConfig = (data: Record<string, unknown>): string => `#cloud-config\n${JSON.stringify(data, null, 2)}\n`;

function authorizedKeyLines(text: string | undefined): string[] {
  return (text ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

export function renderSeed(input: SeedInput): SeedFile[] {
  const keys = authorizedKeyLines(input.authKeys);
  const metaData: Record<string, unknown> = { 'instance-id': input.instanceId, 'local-hostname': input.hostname };
  if (keys.length > 0) metaData['public-keys'] = keys;

  const vendor: Record<string, unknown> = {
    preserve_hostname: false,
    ssh_deletekeys: true,
    ssh_genkeytypes: ['rsa', 'ecdsa', 'ed25519'],
  };
  if (input.passwordHash !== undefined) {
    vendor.ssh_pwauth = true;
    vendor.chpasswd = {
      expire: false,
      users: input.users.map((name) => ({ name, password: input.passwordHash, type: 'hash' })),
    };
  }
  // The public keys reach root only when cloud-init does not disable root logins.
  if (input.users.includes('root')) vendor.disable_root = false;
  if (input.swapMiB !== undefined)
    vendor.swap = { filename: '/swap.img', size: input.swapMiB * 1048576, maxsize: input.swapMiB * 1048576 };

  const files: SeedFile[] = [
    {
      path: DATASOURCE_CFG,
      mode: 0o644,
      // cloud-init sets the short name of an FQDN unless told to prefer the FQDN (files mode
      // sets the name as given). Here, not in vendor-data: cloud-init sets the hostname in
      // its local stage, before it reads vendor-data, and later keeps what it set then (seen
      // with Debian 13's cloud-init 25.1).
      content: `# Written by snf-image (CLOUD_INIT): the instance's NoCloud seed is in ${SEED_DIR}.\ndatasource_list: [ NoCloud, None ]\nprefer_fqdn_over_hostname: true\n`,
    },
    { path: `${SEED_DIR}/meta-data`, mode: 0o600, content: `${JSON.stringify(metaData, null, 2)}\n` },
    { path: `${SEED_DIR}/user-data`, mode: 0o600, content: input.userData ?? '#cloud-config\n{}\n' },
    { path: `${SEED_DIR}/vendor-data`, mode: 0o600, content: cloudConfig(vendor) },
    {
      path: CLEAR_USER_DATA,
      mode: input.debug ? 0o644 : 0o755,
      content: `#!/bin/sh\n# Written by snf-image: cloud_userdata is not kept after first boot.\ncat /dev/null > ${SEED_DIR}/user-data\n`,
    },
  ];
  if (input.debug)
    files.push({
      path: DEBUG_CFG,
      mode: 0o644,
      content: '# Written by snf-image (CLOUD_INIT_DEBUG).\ndebug:\n  verbose: true\n',
    });
  return files;
}

/** The seed's network-config: version 2 from the network model, every NIC matched by MAC. */
export function seedNetworkConfig(nics: readonly NicModel[]): SeedFile {
  return {
    path: `${SEED_DIR}/network-config`,
    mode: 0o600,
    content: `${JSON.stringify(networkConfigV2(nics), null, 2)}\n`,
  };
}
