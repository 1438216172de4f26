/**
 * The one internal network model: what each NIC of the instance should get, decided from
 * the NIC_<i>_* environment (the config document's `nics`) and the DHCP_TAGS,
 * STATEFUL_DHCPV6_TAGS, STATELESS_DHCPV6_TAGS and DEFAULT_NIC_CONFIG settings (its
 * `network`). Every renderer (ifupdown, ifcfg, NetworkManager, netplan, systemd-networkd)
 * works from this model only.
 *
 * Decision rules, as upstream's tasks/50ConfigureNetwork decides them, per NIC:
 *
 * - Tags: every network tag of the NIC is compared with the three tag lists, in order. A tag
 *   in DHCP_TAGS sets "dhcp"; a tag in STATEFUL_DHCPV6_TAGS sets dhcp6=stateful; a tag in
 *   STATELESS_DHCPV6_TAGS sets dhcp6=stateless. The last tag that matches a DHCPv6 list wins,
 *   and a tag in both DHCPv6 lists counts as stateless (upstream checks that list second).
 *   `nfdhcpd` is in DHCP_TAGS and STATELESS_DHCPV6_TAGS by default, so it means both.
 * - IPv4 is configured only when the NIC has an IP (NIC_<i>_IP). It is DHCP when a tag is in
 *   DHCP_TAGS, and also when the NIC's network has no subnet (NIC_<i>_NETWORK_SUBNET):
 *   without a prefix length the address cannot be configured statically. That covers
 *   Ganeti without networks, where a NIC may carry an IP but no subnet and no gateway:
 *   upstream configures it with DHCP, and so do we (the IP is not written anywhere).
 *   Otherwise it is static: the IP, the prefix length of the subnet, and the network's
 *   gateway when it has one (a static NIC without a gateway gets no default route).
 * - IPv6 is configured only when the network has an IPv6 gateway (NIC_<i>_NETWORK_GATEWAY6):
 *   stateful tag => DHCPv6 ("dhcpv6"), stateless tag => SLAAC plus stateless DHCPv6
 *   ("slaac_dhcp"), otherwise SLAAC ("slaac"). A subnet6 without gateway6 configures nothing.
 * - DEFAULT_NIC_CONFIG: when the instance has exactly one NIC and nothing above configures
 *   it (no IP and no IPv6 gateway), the NIC is taken for the default NIC Ganeti adds when
 *   `gnt-instance add` gets neither --net nor --no-nics, and it is configured as
 *   DEFAULT_NIC_CONFIG says: "" (nothing), dhcp, dhcpv6, slaac, slaac_dhcp, dhcp+dhcpv6,
 *   dhcp+slaac, dhcp+slaac_dhcp. This is upstream's rule exactly (0.23,
 *   snf-image-helper/tasks/50ConfigureNetwork.in: `NIC_COUNT -eq 1 -a ipv4 = no -a ipv6 =
 *   no`): a network name, subnet or tags do not prevent it. It never applies to an instance
 *   with two or more NICs, nor to a NIC with an IP (even without a subnet: that one gets
 *   DHCP by the rule above) or an IPv6 gateway.
 * - A NIC for which nothing is decided (no IP and no IPv6 gateway, or DEFAULT_NIC_CONFIG "")
 *   stays in the model with neither ipv4 nor ipv6: renderers bring its link up with no
 *   addresses, as upstream's drivers did (its previous configuration is not kept).
 *
 * Interfaces are identified by MAC address only; `name` (snf<index>, Ganeti's NIC index) is
 * the name snf-image gives the interface where a system needs a name (see renderers.ts).
 * Never eth<n>: the kernel's eth<n> order is not the NIC order.
 */
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';

export type Ipv4Config =
  | { method: 'dhcp' }
  | { method: 'static'; address: string; prefix: number; netmask: string; gateway?: string };

export type Ipv6Method = 'slaac' | 'slaac_dhcp' | 'dhcpv6';

export interface NicModel {
  /** Ganeti's NIC index. */
  index: number;
  /** Lower-case colon-separated MAC address: how every renderer finds the interface. */
  mac: string;
  /** The interface name snf-image gives the NIC (snf<index>). */
  name: string;
  ipv4?: Ipv4Config;
  ipv6?: Ipv6Method;
  /** 'network': decided from the NIC's own information; 'default': DEFAULT_NIC_CONFIG. */
  source: 'network' | 'default';
}

export const DEFAULT_NIC_CONFIG_VALUES = [
  '',
  'dhcp',
  'dhcpv6',
  'slaac',
  'slaac_dhcp',
  'dhcp+dhcpv6',
  'dhcp+slaac',
  'dhcp+slaac_dhcp',
] as const;

type Nic = ConfigDocument['nics'][number];
type NetworkSettings = ConfigDocument['network'];

function interfaceName(index: number): string {
  return `snf${index}`;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isIpv4(text: string): boolean {
  return IPV4.test(text);
}

/** Dotted netmask of an IPv4 prefix length (24 -> 255.255.255.0). */
export function prefixToNetmask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (bits >>> shift) & 0xff).join('.');
}

function normalizeMac(nic: Nic): string {
  const mac = nic.mac.trim().toLowerCase().replace(/-/g, ':');
  if (!MAC.test(mac))
    throw new Error(`NIC ${nic.index}: MAC address '${nic.mac}' is not of the form aa:bb:cc:dd:ee:ff`);
  return mac;
}

function subnetPrefix(nic: Nic, subnet: string): number {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(subnet.trim());
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || !isIpv4(m[1] as string) || prefix > 32)
    throw new Error(`NIC ${nic.index}: network subnet '${subnet}' is not an IPv4 subnet like 192.0.2.0/24`);
  return prefix;
}

function tagDecisions(
  tags: readonly string[],
  settings: NetworkSettings,
): { dhcp: boolean; dhcp6: 'no' | 'stateful' | 'stateless' } {
  let dhcp = false;
  let dhcp6: 'no' | 'stateful' | 'stateless' = 'no';
  for (const tag of tags) {
    if (settings.dhcpTags.includes(tag)) dhcp = true;
    if (settings.statefulDhcpv6Tags.includes(tag)) dhcp6 = 'stateful';
    if (settings.statelessDhcpv6Tags.includes(tag)) dhcp6 = 'stateless';
  }
  return { dhcp, dhcp6 };
}

/** Upstream's default NIC: nothing of the NIC's own information configures it. */
function isUnconfigured(nic: Nic): boolean {
  return !nic.ip && !nic.network.gateway6;
}

/** The NIC configuration DEFAULT_NIC_CONFIG names ("dhcp+slaac" -> IPv4 DHCP and SLAAC). */
export function parseDefaultNicConfig(value: string): { ipv4?: Ipv4Config; ipv6?: Ipv6Method } {
  const text = value.trim();
  if (!(DEFAULT_NIC_CONFIG_VALUES as readonly string[]).includes(text)) {
    throw new Error(
      `DEFAULT_NIC_CONFIG '${value}' is not one of ${DEFAULT_NIC_CONFIG_VALUES.map((v) => `"${v}"`).join(', ')}`,
    );
  }
  const out: { ipv4?: Ipv4Config; ipv6?: Ipv6Method } = {};
  for (const part of text.split('+').filter(Boolean)) {
    if (part === 'dhcp') out.ipv4 = { method: 'dhcp' };
    else out.ipv6 = part as Ipv6Method;
  }
  return out;
}

function nicFromNetwork(nic: Nic, mac: string, settings: NetworkSettings): NicModel {
  const model: NicModel = { index: nic.index, mac, name: interfaceName(nic.index), source: 'network' };
  const { dhcp, dhcp6 } = tagDecisions(nic.network.tags, settings);
  const subnet = nic.network.subnet;
  if (nic.ip) {
    if (dhcp || !subnet) model.ipv4 = { method: 'dhcp' };
    else {
      if (!isIpv4(nic.ip)) throw new Error(`NIC ${nic.index}: IP '${nic.ip}' is not an IPv4 address`);
      const prefix = subnetPrefix(nic, subnet);
      const gateway = nic.network.gateway;
      if (gateway !== undefined && !isIpv4(gateway))
        throw new Error(`NIC ${nic.index}: network gateway '${gateway}' is not an IPv4 address`);
      model.ipv4 = {
        method: 'static',
        address: nic.ip,
        prefix,
        netmask: prefixToNetmask(prefix),
        ...(gateway ? { gateway } : {}),
      };
    }
  }
  if (nic.network.gateway6)
    model.ipv6 = dhcp6 === 'stateful' ? 'dhcpv6' : dhcp6 === 'stateless' ? 'slaac_dhcp' : 'slaac';
  return model;
}

/** Per NIC (in Ganeti's order): MAC, name, IPv4 and IPv6 configuration. */
export function networkModel(config: Pick<ConfigDocument, 'nics' | 'network'>): NicModel[] {
  const nics = [...config.nics].sort((a, b) => a.index - b.index);
  const seen = new Map<string, number>();
  const models = nics.map((nic) => {
    const mac = normalizeMac(nic);
    const other = seen.get(mac);
    if (other !== undefined) throw new Error(`NICs ${other} and ${nic.index} have the same MAC address ${mac}`);
    seen.set(mac, nic.index);
    if (nics.length === 1 && isUnconfigured(nic)) {
      return {
        index: nic.index,
        mac,
        name: interfaceName(nic.index),
        source: 'default' as const,
        ...parseDefaultNicConfig(config.network.defaultNicConfig),
      };
    }
    return nicFromNetwork(nic, mac, config.network);
  });
  return models;
}

/** One line per NIC for the log: "snf0 aa:00:00:12:34:56 ipv4 static 192.0.2.10/24 via 192.0.2.1, ipv6 slaac". */
export function describeNic(nic: NicModel): string {
  const v4 = !nic.ipv4
    ? 'no ipv4'
    : nic.ipv4.method === 'dhcp'
      ? 'ipv4 dhcp'
      : `ipv4 static ${nic.ipv4.address}/${nic.ipv4.prefix}${nic.ipv4.gateway ? ` via ${nic.ipv4.gateway}` : ''}`;
  const v6 = nic.ipv6 ? `ipv6 ${nic.ipv6}` : 'no ipv6';
  return `${nic.name} ${nic.mac} ${v4}, ${v6}${nic.source === 'default' ? ' (DEFAULT_NIC_CONFIG)' : ''}`;
}
