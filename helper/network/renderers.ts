/**
 * Renderers: the network model (model.ts) as the files of one configuration system. Pure
 * functions (model in, file paths and contents out); apply.ts writes them, with backups.
 *
 * Every NIC is identified by its MAC address, never by an eth<n> name:
 *
 * - naming: the NIC gets the name snf<i> (Ganeti's NIC index) from a systemd .link file
 *   (/etc/systemd/network/10-snf-image-<i>.link, [Match] MACAddress= and
 *   PermanentMACAddress=, [Link] Name=snf<i>) read by systemd-udevd, or, in guests with
 *   another udev, from a NAME= rule (/etc/udev/rules.d/70-snf-image-net.rules). The
 *   PermanentMACAddress= match keeps a bridge, bond or VLAN that shares the NIC's MAC from
 *   being renamed too (it has no permanent address); a systemd older than 245 ignores that
 *   key and still matches MACAddress=. netplan names the NIC itself (set-name).
 *   Renaming also makes every configuration the image had for its old names (eth0, ens3,
 *   en*) inert.
 * - ifupdown (/etc/network/interfaces) knows interfaces by name only: its stanzas use
 *   snf<i>, which the .link file guarantees on Debian 12 (udev renames the NIC when it is
 *   added, before ifupdown's hotplug and networking.service look at it). `auto` and
 *   `allow-hotplug` both, as upstream: networking.service brings it up at boot, the udev
 *   hotplug path when it appears later.
 * - ifcfg (/etc/sysconfig/network-scripts/ifcfg-snf<i>): DEVICE=snf<i> and HWADDR=<mac>
 *   (the network scripts' own rename_device also names the NIC by HWADDR).
 * - NetworkManager keyfiles (/etc/NetworkManager/system-connections/snf-image-<i>.nmconnection,
 *   mode 0600): [ethernet] mac-address=, no interface-name; autoconnect-priority=100 so the
 *   profile wins over a catch-all profile the image may have.
 * - netplan (/etc/netplan/50-snf-image.yaml, mode 0600): match: macaddress: and set-name:.
 * - systemd-networkd (/etc/systemd/network/10-snf-image-<i>.network): [Match] MACAddress=
 *   and PermanentMACAddress=. Prefix 10, not 50: networkd uses the first .network file (in
 *   file name order) that matches a link, and a catch-all file of the image (Type=ether,
 *   Name=*) sorting before ours would win.
 *
 * Per NIC, what each method becomes:
 *
 * | model           | ifupdown            | ifcfg                              | NetworkManager       | netplan                       | networkd                          |
 * | ipv4 dhcp       | inet dhcp           | BOOTPROTO=dhcp                     | ipv4 method=auto     | dhcp4: true                   | DHCP=ipv4                         |
 * | ipv4 static     | inet static address netmask [gateway] | BOOTPROTO=static IPADDR NETMASK [GATEWAY] | manual address1=ip/prefix[,gw] | addresses, routes 0.0.0.0/0 via gw | Address=, [Gateway=]  |
 * | no ipv4         | (no inet stanza)    | BOOTPROTO=none IPV4_FAILURE_FATAL=no | ipv4 method=disabled | dhcp4: false                | DHCP=no                           |
 * | ipv6 slaac      | inet6 auto, privext 0 | IPV6INIT IPV6_AUTOCONF           | ipv6 method=auto     | accept-ra: true, dhcp6: false | IPv6AcceptRA=yes, DHCPv6Client=no |
 * | ipv6 slaac_dhcp | inet6 auto, privext 0, dhcp 1 | + DHCPV6C, DHCPV6C_OPTIONS=-S | ipv6 method=auto | accept-ra: true, dhcp6: true | IPv6AcceptRA=yes                  |
 * | ipv6 dhcpv6     | inet6 dhcp          | IPV6INIT DHCPV6C                   | ipv6 method=auto     | accept-ra: true, dhcp6: true  | DHCP=ipv6 (or yes), IPv6AcceptRA=yes |
 * | no ipv6         | (no inet6 stanza)   | IPV6INIT=no                        | ipv6 method=ignore   | dhcp6: false, accept-ra: false | IPv6AcceptRA=no                  |
 *
 * NetworkManager's method=auto follows the router advertisement's M/O flags (SLAAC,
 * stateless or stateful DHCPv6), as upstream used it; `ignore` (not `disabled`, unknown
 * before NetworkManager 1.20) for no IPv6. A NIC with neither IPv4 nor IPv6 is brought up
 * without addresses (ifupdown `inet manual`, networkd also LinkLocalAddressing=no, netplan
 * link-local: []). No DNS servers are written: Ganeti has none to give (DHCP provides them).
 */
import { createHash } from 'node:crypto';
import type { NicModel } from './model.ts';
import type { NetworkSystem } from './detect.ts';

export interface GuestFile {
  path: string;
  content: string;
  mode: number;
}

export const HEADER = "Written by snf-image's ConfigureNetwork task";

function linkFilePath(nic: Pick<NicModel, 'index'>): string {
  return `/etc/systemd/network/10-snf-image-${nic.index}.link`;
}

export const UDEV_RULES_PATH = '/etc/udev/rules.d/70-snf-image-net.rules';
const INTERFACES_PATH = '/etc/network/interfaces';
export const NETPLAN_PATH = '/etc/netplan/50-snf-image.yaml';
export const IFCFG_DIR = '/etc/sysconfig/network-scripts';
export const NM_DIR = '/etc/NetworkManager/system-connections';
export const NETWORKD_DIR = '/etc/systemd/network';

/** systemd .link files naming each NIC snf<i> after its MAC address. */
export function renderLinkFiles(nics: readonly NicModel[]): GuestFile[] {
  return nics.map((nic) => ({
    path: linkFilePath(nic),
    mode: 0o644,
    content: [
      `# ${HEADER}: NIC ${nic.index} is named ${nic.name} after its MAC address.`,
      '[Match]',
      `MACAddress=${nic.mac}`,
      `PermanentMACAddress=${nic.mac}`,
      '',
      '[Link]',
      `Name=${nic.name}`,
      '',
    ].join('\n'),
  }));
}

/** The same naming as a udev rule, for a udev without .link files. */
export function renderUdevRules(nics: readonly NicModel[]): GuestFile[] {
  const lines = [`# ${HEADER}: NICs named after their MAC address.`];
  for (const nic of nics)
    lines.push(
      `SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="${nic.mac}", ATTR{type}=="1", NAME="${nic.name}"`,
    );
  return [{ path: UDEV_RULES_PATH, mode: 0o644, content: `${lines.join('\n')}\n` }];
}

export function renderIfupdown(nics: readonly NicModel[]): GuestFile[] {
  const lines = [
    '# This file describes the network interfaces available on your system',
    '# and how to activate them. For more information, see interfaces(5).',
    `# ${HEADER}. Interface snf<i> is the NIC`,
    '# with the MAC address noted above its stanza: snf-image names it so in',
    '# /etc/systemd/network/10-snf-image-<i>.link (or /etc/udev/rules.d/70-snf-image-net.rules).',
    '',
    '# The loopback network interface',
    'auto lo',
    'iface lo inet loopback',
  ];
  for (const nic of nics) {
    lines.push('', `# NIC ${nic.index}, MAC ${nic.mac}`, `auto ${nic.name}`, `allow-hotplug ${nic.name}`);
    const v4 = nic.ipv4;
    if (v4?.method === 'dhcp') lines.push(`iface ${nic.name} inet dhcp`);
    else if (v4?.method === 'static') {
      lines.push(`iface ${nic.name} inet static`, `    address ${v4.address}`, `    netmask ${v4.netmask}`);
      if (v4.gateway) lines.push(`    gateway ${v4.gateway}`);
    } else if (!nic.ipv6) lines.push(`iface ${nic.name} inet manual`);
    if (nic.ipv6 === 'dhcpv6') lines.push(`iface ${nic.name} inet6 dhcp`);
    else if (nic.ipv6 === 'slaac') lines.push(`iface ${nic.name} inet6 auto`, '    privext 0');
    else if (nic.ipv6 === 'slaac_dhcp') lines.push(`iface ${nic.name} inet6 auto`, '    privext 0', '    dhcp 1');
  }
  return [{ path: INTERFACES_PATH, mode: 0o644, content: `${lines.join('\n')}\n` }];
}

export function ifcfgPath(nic: Pick<NicModel, 'name'>): string {
  return `${IFCFG_DIR}/ifcfg-${nic.name}`;
}

export function renderIfcfg(nics: readonly NicModel[]): GuestFile[] {
  return nics.map((nic) => {
    const lines = [
      `# ${HEADER} (NIC ${nic.index}).`,
      `DEVICE=${nic.name}`,
      `HWADDR=${nic.mac}`,
      'TYPE=Ethernet',
      'ONBOOT=yes',
      'NM_CONTROLLED=yes',
    ];
    const v4 = nic.ipv4;
    if (v4?.method === 'dhcp') lines.push('BOOTPROTO=dhcp');
    else if (v4?.method === 'static') {
      lines.push('BOOTPROTO=static', `IPADDR=${v4.address}`, `NETMASK=${v4.netmask}`);
      if (v4.gateway) lines.push(`GATEWAY=${v4.gateway}`);
    } else lines.push('BOOTPROTO=none', 'IPV4_FAILURE_FATAL=no');
    if (nic.ipv6 === 'dhcpv6') lines.push('IPV6INIT=yes', 'DHCPV6C=yes');
    else if (nic.ipv6 === 'slaac') lines.push('IPV6INIT=yes', 'IPV6_AUTOCONF=yes');
    else if (nic.ipv6 === 'slaac_dhcp')
      lines.push('IPV6INIT=yes', 'IPV6_AUTOCONF=yes', 'DHCPV6C=yes', 'DHCPV6C_OPTIONS="-S"');
    else lines.push('IPV6INIT=no');
    return { path: ifcfgPath(nic), mode: 0o644, content: `${lines.join('\n')}\n` };
  });
}

// Name-based (version 5) UUIDs in this namespace: a NIC's connection keeps its UUID when
// the task runs again.
const NM_UUID_NAMESPACE = '6c1c39ac-3a5e-4d8f-9a57-2f0a1f6c5e11';

export function nameUuid(name: string, namespace: string = NM_UUID_NAMESPACE): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const hash = createHash('sha1').update(ns).update(name, 'utf8').digest();
  hash[6] = ((hash[6] as number) & 0x0f) | 0x50;
  hash[8] = ((hash[8] as number) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function nmConnectionPath(nic: Pick<NicModel, 'index'>): string {
  return `${NM_DIR}/snf-image-${nic.index}.nmconnection`;
}

export function renderNetworkManager(nics: readonly NicModel[]): GuestFile[] {
  return nics.map((nic) => {
    const lines = [
      `# ${HEADER} (NIC ${nic.index}).`,
      '[connection]',
      `id=snf-image NIC ${nic.index}`,
      `uuid=${nameUuid(`snf-image:${nic.mac}`)}`,
      'type=ethernet',
      'autoconnect=true',
      'autoconnect-priority=100',
      '',
      '[ethernet]',
      `mac-address=${nic.mac}`,
      '',
      '[ipv4]',
    ];
    const v4 = nic.ipv4;
    if (v4?.method === 'dhcp') lines.push('method=auto');
    else if (v4?.method === 'static')
      lines.push('method=manual', `address1=${v4.address}/${v4.prefix}${v4.gateway ? `,${v4.gateway}` : ''}`);
    else lines.push('method=disabled');
    lines.push('', '[ipv6]');
    if (nic.ipv6) lines.push('method=auto', 'addr-gen-mode=eui64', 'ip6-privacy=0');
    else lines.push('method=ignore');
    return { path: nmConnectionPath(nic), mode: 0o600, content: `${lines.join('\n')}\n` };
  });
}

export interface NetplanOptions {
  /** The global renderer the image's netplan configuration named, when not networkd. */
  renderer?: 'NetworkManager' | 'networkd';
}

export function renderNetplan(nics: readonly NicModel[], options: NetplanOptions = {}): GuestFile[] {
  const lines = [`# ${HEADER}.`, 'network:', '  version: 2'];
  if (options.renderer) lines.push(`  renderer: ${options.renderer}`);
  lines.push('  ethernets:');
  for (const nic of nics) {
    lines.push(`    ${nic.name}:`, '      match:', `        macaddress: "${nic.mac}"`, `      set-name: ${nic.name}`);
    const v4 = nic.ipv4;
    lines.push(`      dhcp4: ${v4?.method === 'dhcp' ? 'true' : 'false'}`);
    if (v4?.method === 'static') {
      lines.push('      addresses:', `        - ${v4.address}/${v4.prefix}`);
      if (v4.gateway) lines.push('      routes:', '        - to: 0.0.0.0/0', `          via: ${v4.gateway}`);
    }
    lines.push(`      dhcp6: ${nic.ipv6 === 'dhcpv6' || nic.ipv6 === 'slaac_dhcp' ? 'true' : 'false'}`);
    lines.push(`      accept-ra: ${nic.ipv6 ? 'true' : 'false'}`);
    if (!v4 && !nic.ipv6) lines.push('      link-local: []');
  }
  return [{ path: NETPLAN_PATH, mode: 0o600, content: `${lines.join('\n')}\n` }];
}

/** cloud-init's network-config version 2: the settings renderNetplan writes, as data. */
export function networkConfigV2(nics: readonly NicModel[]): {
  version: 2;
  ethernets: Record<string, Record<string, unknown>>;
} {
  const ethernets: Record<string, Record<string, unknown>> = {};
  for (const nic of nics) {
    const v4 = nic.ipv4;
    const entry: Record<string, unknown> = {
      match: { macaddress: nic.mac },
      'set-name': nic.name,
      dhcp4: v4?.method === 'dhcp',
    };
    if (v4?.method === 'static') {
      entry.addresses = [`${v4.address}/${v4.prefix}`];
      if (v4.gateway) entry.routes = [{ to: '0.0.0.0/0', via: v4.gateway }];
    }
    entry.dhcp6 = nic.ipv6 === 'dhcpv6' || nic.ipv6 === 'slaac_dhcp';
    entry['accept-ra'] = nic.ipv6 !== undefined;
    if (!v4 && !nic.ipv6) entry['link-local'] = [];
    ethernets[nic.name] = entry;
  }
  return { version: 2, ethernets };
}

function networkdPath(nic: Pick<NicModel, 'index'>): string {
  return `${NETWORKD_DIR}/10-snf-image-${nic.index}.network`;
}

export function renderNetworkd(nics: readonly NicModel[]): GuestFile[] {
  return nics.map((nic) => {
    const v4 = nic.ipv4;
    const dhcp4 = v4?.method === 'dhcp';
    const dhcp6 = nic.ipv6 === 'dhcpv6';
    const lines = [
      `# ${HEADER} (NIC ${nic.index}).`,
      '[Match]',
      `MACAddress=${nic.mac}`,
      `PermanentMACAddress=${nic.mac}`,
      '',
      '[Network]',
      `DHCP=${dhcp4 && dhcp6 ? 'yes' : dhcp4 ? 'ipv4' : dhcp6 ? 'ipv6' : 'no'}`,
    ];
    if (v4?.method === 'static') {
      lines.push(`Address=${v4.address}/${v4.prefix}`);
      if (v4.gateway) lines.push(`Gateway=${v4.gateway}`);
    }
    lines.push(`IPv6AcceptRA=${nic.ipv6 ? 'yes' : 'no'}`);
    if (!v4 && !nic.ipv6) lines.push('LinkLocalAddressing=no');
    if (nic.ipv6 === 'slaac') lines.push('', '[IPv6AcceptRA]', 'DHCPv6Client=no');
    return { path: networkdPath(nic), mode: 0o644, content: `${lines.join('\n')}\n` };
  });
}

/** The configuration files of one system (naming files excluded: see renderLinkFiles). */
export function render(system: NetworkSystem, nics: readonly NicModel[], options: NetplanOptions = {}): GuestFile[] {
  switch (system) {
    case 'ifupdown':
      return renderIfupdown(nics);
    case 'ifcfg':
      return renderIfcfg(nics);
    case 'networkmanager':
      return renderNetworkManager(nics);
    case 'netplan':
      return renderNetplan(nics, options);
    case 'networkd':
      return renderNetworkd(nics);
  }
}
