/**
 * Writes the rendered network configuration into the mounted guest, through GuestFs only
 * (never through a link out of the guest), and makes sure the image's previous configuration
 * cannot fight it:
 *
 * - A file that is replaced is first copied to `<file>.snf-image-<UTC yyyymmddhhmmss>`; a
 *   file that is disabled is moved there. In the directories whose readers take any file
 *   name (network-scripts: ifcfg-*, NetworkManager's system-connections) the backup ends in
 *   `.bak` as well, a suffix both ignore (a plain copy of ifcfg-eth0 would still be read).
 * - Naming (detect.ts): 10-snf-image-<i>.link files, or the udev rule, name NIC i snf<i>.
 *   Rules in /etc/udev/rules.d that name one of the instance's MAC addresses otherwise
 *   (70-persistent-net.rules) are commented out. Without any udev, ifupdown and ifcfg
 *   cannot be configured (they need the name): warning, nothing is changed.
 * - ifupdown: /etc/network/interfaces is replaced as a whole (loopback plus the NICs), as
 *   upstream did; `source` lines are not carried over, so stanzas in interfaces.d for the
 *   image's old names do not make `ifup -a` fail.
 * - netplan: every other /etc/netplan/*.yaml is disabled (its NIC definitions are the
 *   image's); when one of them set `renderer: NetworkManager`, ours does too.
 * - ifcfg: every other Ethernet ifcfg-* file (TYPE=Ethernet or no TYPE, not a VLAN, not
 *   ifcfg-lo) is disabled; GATEWAY= / GATEWAYDEV= in /etc/sysconfig/network are commented
 *   out (ours is in ifcfg-snf<i>) and NETWORKING=no becomes yes.
 * - NetworkManager and systemd-networkd: the image's other profiles and .network files stay
 *   (after the renaming their name matches are inert; ours win by priority / file order).
 * - Files of an earlier run for NIC indexes the instance no longer has
 *   (snf-image-<j>.nmconnection, 10-snf-image-<j>.network / .link) are disabled.
 * - cloud-init, when the image has /etc/cloud: /etc/cloud/cloud.cfg.d/99-snf-image-network.cfg
 *   says `network: {config: disabled}`, or its fallback configuration would replace ours at
 *   first boot (upstream does the same in its cloud-init mode).
 */
import { posix } from 'node:path';
import type { GuestFileData, GuestFs } from '../guest-files.ts';
import { detectNaming, listDir, netplanFiles, present, type Naming, type NetworkSystem } from './detect.ts';
import type { NicModel } from './model.ts';
import {
  HEADER,
  IFCFG_DIR,
  NETPLAN_PATH,
  NETWORKD_DIR,
  NM_DIR,
  UDEV_RULES_PATH,
  ifcfgPath,
  render,
  renderLinkFiles,
  renderUdevRules,
  type GuestFile,
} from './renderers.ts';

export const CLOUD_INIT_PATH = '/etc/cloud/cloud.cfg.d/99-snf-image-network.cfg';

export interface ApplyResult {
  system: NetworkSystem;
  /** How the NICs got their names ('netplan': set-name). */
  naming: Naming | 'netplan';
  /** Files written (new or changed content). */
  written: string[];
  /** Files that already had the wanted content. */
  unchanged: string[];
  /** "file -> backup" of replaced files. */
  backups: string[];
  /** "file -> backup" of files moved out of the way. */
  disabled: string[];
  warnings: string[];
}

/** UTC yyyymmddhhmmss. */
export function backupStamp(now: Date): string {
  return now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

const ANY_NAME_DIRS = new Set([IFCFG_DIR, NM_DIR]);

type Snapshot = GuestFileData;

class GuestChanges {
  private readonly fs: GuestFs;
  private readonly stamp: string;
  private readonly result: ApplyResult;

  constructor(fs: GuestFs, stamp: string, result: ApplyResult) {
    this.fs = fs;
    this.stamp = stamp;
    this.result = result;
  }

  /** Content and metadata of a guest file (links followed inside the guest), if readable. */
  snapshot(path: string): Snapshot | undefined {
    return this.fs.readFileData(path);
  }

  backupName(path: string): string {
    const suffix = ANY_NAME_DIRS.has(posix.dirname(path)) ? '.bak' : '';
    for (let n = 0; ; n++) {
      const name = `${path}.snf-image-${this.stamp}${n === 0 ? '' : `-${n}`}${suffix}`;
      if (!present(this.fs, name)) return name;
    }
  }

  private copyAside(path: string, old: Snapshot): string {
    const backup = this.backupName(path);
    this.fs.write(backup, old.data, { mode: old.mode, uid: old.uid, gid: old.gid });
    return backup;
  }

  /** Writes a file, backing up different previous content. */
  replace(file: GuestFile): void {
    const old = this.snapshot(file.path);
    if (old && old.data.toString('utf8') === file.content && old.mode === file.mode && old.uid === 0 && old.gid === 0) {
      this.result.unchanged.push(file.path);
      return;
    }
    if (old) this.result.backups.push(`${file.path} -> ${this.copyAside(file.path, old)}`);
    this.fs.write(file.path, file.content, { mode: file.mode, uid: 0, gid: 0 });
    this.result.written.push(file.path);
  }

  /** Moves a file out of the way (to its backup name). */
  disable(path: string): void {
    const old = this.snapshot(path);
    if (!old) return;
    const backup = this.copyAside(path, old);
    this.fs.remove(path);
    this.result.disabled.push(`${path} -> ${backup}`);
  }

  /** Disables files of an earlier run (pattern's group 1 = NIC index) for NICs the instance no longer has. */
  disableStale(dir: string, pattern: RegExp, nics: readonly NicModel[]): void {
    const wanted = new Set(nics.map((n) => n.index));
    for (const name of listDir(this.fs, dir)) {
      const m = pattern.exec(name);
      if (m && !wanted.has(Number(m[1]))) this.disable(`${dir}/${name}`);
    }
  }
}

/** Shell-style KEY=VALUE assignments of an ifcfg-like file (quotes removed, upper-case keys). */
export function parseAssignments(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[(m[1] as string).toUpperCase()] = (m[2] as string).trim().replace(/^(["'])(.*)\1$/, '$2');
  }
  return out;
}

const IGNORED_SUFFIX = /(~|\.bak|\.old|\.orig|\.rej|\.rpmnew|\.rpmorig|\.rpmsave|\.augnew|\.augtmp)$/;

/** Whether an ifcfg file configures an Ethernet interface (the ones the image's old NICs had). */
export function isEthernetIfcfg(name: string, text: string): boolean {
  if (name === 'ifcfg-lo' || IGNORED_SUFFIX.test(name) || name.includes('.snf-image-')) return false;
  const vars = parseAssignments(text);
  if ((vars.DEVICE ?? name.slice('ifcfg-'.length)) === 'lo') return false;
  if ((vars.VLAN ?? '').toLowerCase() === 'yes') return false;
  const type = (vars.TYPE ?? '').toLowerCase();
  return type === '' || type === 'ethernet';
}

/** Comments out udev rules that give one of `macs` a name (e.g. 70-persistent-net.rules). */
export function withoutNamingRules(text: string, macs: readonly string[]): string {
  return text
    .split('\n')
    .map((line) => {
      if (/^\s*#/.test(line) || !/\bNAME\s*:?=/.test(line)) return line;
      const address = /(?:ATTR|SYSFS)\{address\}\s*==\s*"([^"]*)"/i.exec(line)?.[1]?.toLowerCase();
      return address && macs.includes(address) ? `# disabled by snf-image, which names this NIC itself: ${line}` : line;
    })
    .join('\n');
}

/** /etc/sysconfig/network without a global gateway and with NETWORKING=yes. */
export function sysconfigNetwork(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      if (/^\s*(GATEWAY|GATEWAYDEV)=/.test(line))
        return `# disabled by snf-image (gateways are in ifcfg-snf<i>): ${line}`;
      if (/^\s*NETWORKING=/.test(line) && !/^\s*NETWORKING=["']?yes["']?\s*$/.test(line)) return 'NETWORKING=yes';
      return line;
    })
    .join('\n');
}

/**
 * Whether a netplan file of the image names NetworkManager as its renderer. The blanks
 * before "renderer:" are those of its own line: /^\s*renderer/m ran from every line start
 * across all the blank lines after it (quadratic in a file of blank lines).
 */
export function netplanUsesNetworkManager(text: string): boolean {
  return /^[^\S\n\r\u2028\u2029]*renderer:\s*["']?NetworkManager["']?\s*$/m.test(text);
}

function netplanRenderer(fs: GuestFs, changes: GuestChanges): 'NetworkManager' | undefined {
  for (const name of netplanFiles(fs)) {
    const text = changes.snapshot(`/etc/netplan/${name}`)?.data.toString('utf8') ?? '';
    if (netplanUsesNetworkManager(text)) return 'NetworkManager';
  }
  return undefined;
}

function neutralizeNamingRules(fs: GuestFs, changes: GuestChanges, nics: readonly NicModel[]): void {
  const dir = '/etc/udev/rules.d';
  const macs = nics.map((n) => n.mac);
  for (const name of listDir(fs, dir).filter((f) => f.endsWith('.rules'))) {
    const path = `${dir}/${name}`;
    if (path === UDEV_RULES_PATH) continue;
    const old = changes.snapshot(path);
    if (!old) continue;
    const text = old.data.toString('utf8');
    const updated = withoutNamingRules(text, macs);
    if (updated !== text) changes.replace({ path, content: updated, mode: old.mode });
  }
}

/** Configures the guest's network with `system` for `nics`. */
export function applyNetwork(
  fs: GuestFs,
  system: NetworkSystem,
  nics: readonly NicModel[],
  now: Date = new Date(),
): ApplyResult {
  const result: ApplyResult = {
    system,
    naming: 'netplan',
    written: [],
    unchanged: [],
    backups: [],
    disabled: [],
    warnings: [],
  };
  const changes = new GuestChanges(fs, backupStamp(now), result);

  if (system !== 'netplan') {
    result.naming = detectNaming(fs);
    if (result.naming === 'none') {
      if (system === 'ifupdown' || system === 'ifcfg') {
        result.warnings.push(
          `the image has no udev: its NICs cannot be named after their MAC addresses, which ${system} needs; its network configuration is left as it is`,
        );
        return result;
      }
      result.warnings.push(
        'the image has no udev: the NICs keep the names the kernel gives them (the configuration matches them by MAC address)',
      );
    }
  }
  if (result.naming === 'link') {
    for (const file of renderLinkFiles(nics)) changes.replace(file);
    changes.disableStale(NETWORKD_DIR, /^10-snf-image-(\d+)\.link$/, nics);
  } else if (result.naming === 'udev-rule') {
    for (const file of renderUdevRules(nics)) changes.replace(file);
  }
  neutralizeNamingRules(fs, changes, nics);

  switch (system) {
    case 'ifupdown':
      break;
    case 'netplan': {
      const renderer = netplanRenderer(fs, changes);
      for (const name of netplanFiles(fs))
        if (`/etc/netplan/${name}` !== NETPLAN_PATH) changes.disable(`/etc/netplan/${name}`);
      for (const file of render(system, nics, renderer ? { renderer } : {})) changes.replace(file);
      break;
    }
    case 'ifcfg': {
      const ours = new Set(nics.map((n) => ifcfgPath(n)));
      for (const name of listDir(fs, IFCFG_DIR).filter((f) => f.startsWith('ifcfg-'))) {
        const path = `${IFCFG_DIR}/${name}`;
        if (ours.has(path)) continue;
        const old = changes.snapshot(path);
        if (old && isEthernetIfcfg(name, old.data.toString('utf8'))) changes.disable(path);
      }
      const network = changes.snapshot('/etc/sysconfig/network');
      if (network) {
        const text = network.data.toString('utf8');
        const updated = sysconfigNetwork(text);
        if (updated !== text) changes.replace({ path: '/etc/sysconfig/network', content: updated, mode: network.mode });
      }
      break;
    }
    case 'networkmanager':
      changes.disableStale(NM_DIR, /^snf-image-(\d+)\.nmconnection$/, nics);
      break;
    case 'networkd':
      changes.disableStale(NETWORKD_DIR, /^10-snf-image-(\d+)\.network$/, nics);
      break;
  }
  if (system !== 'netplan') for (const file of render(system, nics)) changes.replace(file);

  if (fs.isDirectory('/etc/cloud')) {
    changes.replace({
      path: CLOUD_INIT_PATH,
      mode: 0o644,
      content: `# ${HEADER}: snf-image configured the network,\n# cloud-init must not replace that configuration.\nnetwork: {config: disabled}\n`,
    });
  }
  return result;
}
