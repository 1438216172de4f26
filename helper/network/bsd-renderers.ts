/**
 * The network model as BSD configuration: FreeBSD rc.conf ifconfig_<if> lines, OpenBSD
 * /etc/hostname.<if> + /etc/mygate, NetBSD /etc/ifconfig.<if> + rc.conf. BSD interfaces are
 * named by driver and probe order (vtnet0, vio1, …), so each NIC's name is its driver (by
 * Ganeti's NIC frontend type) plus its index among the NICs of that type, in NIC order, as
 * upstream named them. Pure functions: the adapter writes the result.
 */
import type { BsdFamily } from '../bsd/partition-types.ts';
import { rcConfWith, rcConfWithout } from '../bsd/rc-conf.ts';
import type { NicModel } from './model.ts';

export class BsdNetworkError extends Error {}

/** Ganeti's KVM nic_type values → each family's driver (upstream's table). */
const BSD_DRIVERS: Readonly<Record<string, Readonly<Record<BsdFamily, string>>>> = {
  paravirtual: { freebsd: 'vtnet', openbsd: 'vio', netbsd: 'vioif' },
  e1000: { freebsd: 'em', openbsd: 'em', netbsd: 'wm' },
  rtl8139: { freebsd: 'rl', openbsd: 'rl', netbsd: 're' },
  ne2k_pci: { freebsd: 'ed', openbsd: 'ne', netbsd: 'ne' },
  ne2k_isa: { freebsd: 'ed', openbsd: 'ne', netbsd: 'ne' },
  i82551: { freebsd: 'fxp', openbsd: 'fxp', netbsd: 'fxp' },
  i82557b: { freebsd: 'fxp', openbsd: 'fxp', netbsd: 'fxp' },
  i82559er: { freebsd: 'fxp', openbsd: 'fxp', netbsd: 'fxp' },
  pcnet: { freebsd: 'pcn', openbsd: 'pcn', netbsd: 'pcn' },
};

/** Ganeti's default KVM nic_type. */
const DEFAULT_FRONTEND = 'paravirtual';

export interface BsdNic {
  nic: NicModel;
  ifname: string;
}

/** Interface names for the NICs (in NIC order), from their frontend types. */
export function bsdInterfaces(
  family: BsdFamily,
  nics: readonly NicModel[],
  frontendTypes: ReadonlyMap<number, string | undefined>,
): BsdNic[] {
  const counters = new Map<string, number>();
  return [...nics]
    .sort((a, b) => a.index - b.index)
    .map((nic) => {
      const type = frontendTypes.get(nic.index) ?? DEFAULT_FRONTEND;
      const drivers = BSD_DRIVERS[type];
      if (!drivers)
        throw new BsdNetworkError(
          `NIC_${nic.index}_FRONTEND_TYPE ${type} has no ${family} driver (one of ${Object.keys(BSD_DRIVERS).join(', ')})`,
        );
      const driver = drivers[family];
      const n = counters.get(driver) ?? 0;
      counters.set(driver, n + 1);
      return { nic, ifname: `${driver}${n}` };
    });
}

export interface BsdNetworkFiles {
  /** Whole files to write (path → content). */
  files: Array<{ path: string; content: string; mode: number }>;
  /** rc.conf as it should be (undefined: unchanged). */
  rcConf?: string;
  /** Files to remove: configuration of the image's own interfaces of the same drivers. */
  remove: string[];
  warnings: string[];
}

const HEADER = "# Written by snf-image's ConfigureNetwork task";

function staticV4(nic: NicModel): { address: string; netmask: string; gateway?: string } | undefined {
  return nic.ipv4?.method === 'static' ? nic.ipv4 : undefined;
}

function defaultGateway(nics: readonly BsdNic[]): string | undefined {
  return nics.map((n) => staticV4(n.nic)?.gateway).find((g) => g !== undefined);
}

function ownedRcName(name: string): boolean {
  return (
    /^ifconfig_[a-z]+\d+(_ipv6|_alias\d+)?$/.test(name) ||
    [
      'defaultrouter',
      'defaultroute',
      'ipv6_activate_all_interfaces',
      'rtsold_enable',
      'dhcp6c_enable',
      'dhcp6c_interfaces',
      'ip6mode',
      'dhcpcd',
      'dhcpcd_flags',
      'rtsol',
      'rtsol_flags',
    ].includes(name)
  );
}

/** FreeBSD: everything in rc.conf. */
export function renderFreebsd(nics: readonly BsdNic[], rcConf: string): BsdNetworkFiles {
  const values: Array<[string, string]> = [];
  const dhcp6: string[] = [];
  for (const { nic, ifname } of nics) {
    const v4 = staticV4(nic);
    values.push([
      `ifconfig_${ifname}`,
      nic.ipv4?.method === 'dhcp' ? 'DHCP' : v4 ? `inet ${v4.address} netmask ${v4.netmask}` : 'up',
    ]);
    if (nic.ipv6) values.push([`ifconfig_${ifname}_ipv6`, 'inet6 accept_rtadv']);
    if (nic.ipv6 === 'dhcpv6' || nic.ipv6 === 'slaac_dhcp') dhcp6.push(ifname);
  }
  const gateway = defaultGateway(nics);
  if (gateway) values.push(['defaultrouter', gateway]);
  if (nics.some((n) => n.nic.ipv6)) values.push(['rtsold_enable', 'YES']);
  const warnings: string[] = [];
  if (dhcp6.length > 0) {
    values.push(['dhcp6c_enable', 'YES'], ['dhcp6c_interfaces', dhcp6.join(' ')]);
    warnings.push(`DHCPv6 on ${dhcp6.join(', ')} needs the dhcp6 package in the image (dhcp6c)`);
  }
  const base = rcConfWithout(rcConf, ownedRcName);
  return { files: [], rcConf: rcConfWith(base, values), remove: [], warnings };
}

/** OpenBSD: /etc/hostname.<if> per NIC and /etc/mygate. */
export function renderOpenbsd(nics: readonly BsdNic[]): BsdNetworkFiles {
  const warnings: string[] = [];
  const files = nics.map(({ nic, ifname }) => {
    const lines = [HEADER];
    const v4 = staticV4(nic);
    if (nic.ipv4?.method === 'dhcp') lines.push('inet autoconf');
    else if (v4) lines.push(`inet ${v4.address} ${v4.netmask} NONE`);
    if (nic.ipv6) lines.push('inet6 autoconf');
    if (nic.ipv6 === 'dhcpv6' || nic.ipv6 === 'slaac_dhcp')
      warnings.push(`${ifname}: OpenBSD has no DHCPv6 client in base; configured with SLAAC only`);
    lines.push('up');
    return { path: `/etc/hostname.${ifname}`, content: `${lines.join('\n')}\n`, mode: 0o640 };
  });
  const gateway = defaultGateway(nics);
  if (gateway) files.push({ path: '/etc/mygate', content: `${gateway}\n`, mode: 0o644 });
  return { files, remove: gateway ? [] : ['/etc/mygate'], warnings };
}

/** NetBSD: /etc/ifconfig.<if> per NIC, rc.conf defaultroute / dhcpcd / ip6mode. */
export function renderNetbsd(nics: readonly BsdNic[], rcConf: string): BsdNetworkFiles {
  const warnings: string[] = [];
  const files = nics.map(({ nic, ifname }) => {
    const lines = [HEADER, 'up'];
    const v4 = staticV4(nic);
    if (v4) lines.push(`inet ${v4.address} netmask ${v4.netmask}`);
    if (nic.ipv4?.method === 'dhcp') lines.push('!dhcpcd -q -4 $int');
    if (nic.ipv6 === 'dhcpv6' || nic.ipv6 === 'slaac_dhcp')
      warnings.push(`${ifname}: DHCPv6 is not configured on NetBSD (upstream does not either); SLAAC only`);
    return { path: `/etc/ifconfig.${ifname}`, content: `${lines.join('\n')}\n`, mode: 0o644 };
  });
  const values: Array<[string, string]> = [];
  const gateway = defaultGateway(nics);
  if (gateway) values.push(['defaultroute', gateway]);
  if (nics.some((n) => n.nic.ipv6)) values.push(['ip6mode', 'autohost']);
  const base = rcConfWithout(rcConf, ownedRcName);
  return { files, rcConf: rcConfWith(base, values), remove: [], warnings };
}

export function renderBsd(family: BsdFamily, nics: readonly BsdNic[], rcConf: string): BsdNetworkFiles {
  if (family === 'freebsd') return renderFreebsd(nics, rcConf);
  if (family === 'openbsd') return renderOpenbsd(nics);
  return renderNetbsd(nics, rcConf);
}
