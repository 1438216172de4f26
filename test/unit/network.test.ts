import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import type { HelperContext } from '../../helper/context.ts';
import { TaskError } from '../../helper/exec.ts';
import { GuestFs } from '../../helper/guest-files.ts';
import {
  applyNetwork,
  backupStamp,
  CLOUD_INIT_PATH,
  isEthernetIfcfg,
  sysconfigNetwork,
  withoutNamingRules,
} from '../../helper/network/apply.ts';
import { detectNaming, detectNetworkSystem } from '../../helper/network/detect.ts';
import { DEFAULT_NIC_CONFIG_VALUES, networkModel, prefixToNetmask, type NicModel } from '../../helper/network/model.ts';
import {
  nameUuid,
  render,
  renderIfcfg,
  renderIfupdown,
  renderLinkFiles,
  renderNetplan,
  renderNetworkd,
  renderNetworkManager,
  renderUdevRules,
} from '../../helper/network/renderers.ts';
import { TASKS } from '../../helper/task-table.ts';
import { configureNetwork } from '../../helper/tasks/network.ts';
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';

type Nic = ConfigDocument['nics'][number];
type Settings = ConfigDocument['network'];

const SETTINGS: Settings = {
  dhcpTags: ['auto', 'dhcp', 'nfdhcpd'],
  statefulDhcpv6Tags: ['dhcpv6', 'stateful_dhcpv6'],
  statelessDhcpv6Tags: ['nfdhcpd', 'stateless_dhcpv6'],
  defaultNicConfig: 'dhcp',
};

function nic(index: number, fields: Partial<Omit<Nic, 'network'>> = {}, network: Partial<Nic['network']> = {}): Nic {
  return { index, mac: `aa:00:00:00:00:0${index}`, ...fields, network: { tags: [], ...network } };
}

function doc(nics: Nic[], settings: Partial<Settings> = {}): Pick<ConfigDocument, 'nics' | 'network'> {
  return { nics, network: { ...SETTINGS, ...settings } };
}

const NET = { name: 'net1', subnet: '192.0.2.0/24', gateway: '192.0.2.1' };
const one = (n: Nic, settings: Partial<Settings> = {}) => networkModel(doc([n], settings))[0];
// A second NIC without information keeps DEFAULT_NIC_CONFIG out of the way.
const firstOfTwo = (n: Nic, settings: Partial<Settings> = {}) => networkModel(doc([n, nic(9)], settings))[0];

const STATIC: NicModel = {
  index: 0,
  mac: 'aa:00:00:12:34:56',
  name: 'snf0',
  source: 'network',
  ipv4: { method: 'static', address: '192.0.2.10', prefix: 24, netmask: '255.255.255.0', gateway: '192.0.2.1' },
};
const DYNAMIC: NicModel = {
  index: 1,
  mac: 'aa:00:00:ab:cd:ef',
  name: 'snf1',
  source: 'network',
  ipv4: { method: 'dhcp' },
  ipv6: 'slaac',
};

describe('network model: upstream decision rules', () => {
  it('IPv4 with a subnet and no DHCP tag is static: address, prefix, netmask and gateway', () => {
    assert.deepEqual(one(nic(0, { ip: '192.0.2.10' }, NET)), {
      index: 0,
      mac: 'aa:00:00:00:00:00',
      name: 'snf0',
      source: 'network',
      ipv4: { method: 'static', address: '192.0.2.10', prefix: 24, netmask: '255.255.255.0', gateway: '192.0.2.1' },
    });
    assert.deepEqual(
      one(nic(0, { ip: '10.1.2.3' }, { subnet: '10.0.0.0/8' }))?.ipv4,
      { method: 'static', address: '10.1.2.3', prefix: 8, netmask: '255.0.0.0' },
      'no gateway: no default route',
    );
    assert.equal(prefixToNetmask(0), '0.0.0.0');
    assert.equal(prefixToNetmask(22), '255.255.252.0');
    assert.equal(prefixToNetmask(32), '255.255.255.255');
  });

  it('each DHCP tag makes IPv4 DHCP', () => {
    for (const tag of SETTINGS.dhcpTags)
      assert.deepEqual(
        one(nic(0, { ip: '192.0.2.10' }, { ...NET, tags: ['other', tag] }))?.ipv4,
        { method: 'dhcp' },
        tag,
      );
    assert.deepEqual(
      one(nic(0, { ip: '192.0.2.10' }, { ...NET, tags: ['mytag'] }), { dhcpTags: ['mytag'] })?.ipv4,
      { method: 'dhcp' },
      'DHCP_TAGS as configured',
    );
    assert.equal(
      one(nic(0, { ip: '192.0.2.10' }, { ...NET, tags: ['dhcp'] }), { dhcpTags: [] })?.ipv4?.method,
      'static',
      'empty DHCP_TAGS',
    );
  });

  it('an IP without a subnet (Ganeti without networks) is DHCP, even with a gateway', () => {
    assert.deepEqual(one(nic(0, { ip: '192.0.2.10' })), {
      index: 0,
      mac: 'aa:00:00:00:00:00',
      name: 'snf0',
      source: 'network',
      ipv4: { method: 'dhcp' },
    });
    assert.deepEqual(one(nic(0, { ip: '192.0.2.10' }, { gateway: '192.0.2.1' }))?.ipv4, { method: 'dhcp' });
  });

  it('no IP: no IPv4, whatever the network says', () => {
    const m = firstOfTwo(nic(0, {}, { ...NET, tags: ['dhcp'] }));
    assert.equal(m?.ipv4, undefined);
    assert.equal(m?.ipv6, undefined);
  });

  it('IPv6 only with a gateway6: SLAAC, stateful tags DHCPv6, stateless tags SLAAC + DHCPv6', () => {
    const v6 = { subnet6: '2001:db8::/64', gateway6: 'fe80::1' };
    assert.equal(firstOfTwo(nic(0, {}, v6))?.ipv6, 'slaac');
    for (const tag of SETTINGS.statefulDhcpv6Tags)
      assert.equal(firstOfTwo(nic(0, {}, { ...v6, tags: [tag] }))?.ipv6, 'dhcpv6', tag);
    for (const tag of SETTINGS.statelessDhcpv6Tags)
      assert.equal(firstOfTwo(nic(0, {}, { ...v6, tags: [tag] }))?.ipv6, 'slaac_dhcp', tag);
    assert.equal(
      firstOfTwo(nic(0, {}, { subnet6: '2001:db8::/64', tags: ['dhcpv6'] }))?.ipv6,
      undefined,
      'subnet6 without gateway6',
    );
    assert.equal(
      firstOfTwo(nic(0, {}, { ...v6, tags: ['v6'] }), { statefulDhcpv6Tags: ['v6'] })?.ipv6,
      'dhcpv6',
      'STATEFUL_DHCPV6_TAGS as configured',
    );
  });

  it('nfdhcpd (default lists) means IPv4 DHCP and SLAAC + stateless DHCPv6', () => {
    assert.deepEqual(one(nic(0, { ip: '192.0.2.10' }, { ...NET, gateway6: 'fe80::1', tags: ['nfdhcpd'] })), {
      index: 0,
      mac: 'aa:00:00:00:00:00',
      name: 'snf0',
      source: 'network',
      ipv4: { method: 'dhcp' },
      ipv6: 'slaac_dhcp',
    });
  });

  it('the last DHCPv6 tag wins; a tag in both lists counts as stateless', () => {
    const v6 = { gateway6: 'fe80::1' };
    assert.equal(firstOfTwo(nic(0, {}, { ...v6, tags: ['stateless_dhcpv6', 'dhcpv6'] }))?.ipv6, 'dhcpv6');
    assert.equal(firstOfTwo(nic(0, {}, { ...v6, tags: ['dhcpv6', 'stateless_dhcpv6'] }))?.ipv6, 'slaac_dhcp');
    assert.equal(
      firstOfTwo(nic(0, {}, { ...v6, tags: ['both'] }), { statefulDhcpv6Tags: ['both'], statelessDhcpv6Tags: ['both'] })
        ?.ipv6,
      'slaac_dhcp',
    );
  });

  it('DEFAULT_NIC_CONFIG configures a lone NIC with no information, for every value', () => {
    const expected: Record<string, Pick<NicModel, 'ipv4' | 'ipv6'>> = {
      '': {},
      dhcp: { ipv4: { method: 'dhcp' } },
      dhcpv6: { ipv6: 'dhcpv6' },
      slaac: { ipv6: 'slaac' },
      slaac_dhcp: { ipv6: 'slaac_dhcp' },
      'dhcp+dhcpv6': { ipv4: { method: 'dhcp' }, ipv6: 'dhcpv6' },
      'dhcp+slaac': { ipv4: { method: 'dhcp' }, ipv6: 'slaac' },
      'dhcp+slaac_dhcp': { ipv4: { method: 'dhcp' }, ipv6: 'slaac_dhcp' },
    };
    assert.deepEqual(Object.keys(expected).sort(), [...DEFAULT_NIC_CONFIG_VALUES].sort());
    for (const [value, config] of Object.entries(expected)) {
      assert.deepEqual(
        one(nic(0, { mode: 'bridged', link: 'br0' }), { defaultNicConfig: value }),
        { index: 0, mac: 'aa:00:00:00:00:00', name: 'snf0', source: 'default', ...config },
        value,
      );
    }
    assert.throws(
      () => one(nic(0), { defaultNicConfig: 'slaac+dhcp' }),
      /DEFAULT_NIC_CONFIG 'slaac\+dhcp' is not one of/,
    );
  });

  it('DEFAULT_NIC_CONFIG does not apply to two NICs, a NIC with an IP or one with an IPv6 gateway', () => {
    const settings = { defaultNicConfig: 'dhcp+slaac' };
    const two = networkModel(doc([nic(0), nic(1)], settings));
    assert.deepEqual(
      two.map((n) => [n.source, n.ipv4, n.ipv6]),
      [
        ['network', undefined, undefined],
        ['network', undefined, undefined],
      ],
    );
    assert.deepEqual(
      one(nic(0, { ip: '192.0.2.10' }), { defaultNicConfig: '' })?.ipv4,
      { method: 'dhcp' },
      'IP without subnet: DHCP by the subnet rule',
    );
    assert.deepEqual(one(nic(0, {}, { gateway6: 'fe80::1', tags: ['dhcpv6'] }), settings), {
      index: 0,
      mac: 'aa:00:00:00:00:00',
      name: 'snf0',
      source: 'network',
      ipv6: 'dhcpv6',
    });
  });

  it("DEFAULT_NIC_CONFIG applies to a lone NIC on a network when it has no IP and no IPv6 gateway (upstream's 50ConfigureNetwork)", () => {
    const settings = { defaultNicConfig: 'dhcp+slaac' };
    for (const network of [
      { name: 'net1' },
      { tags: ['x'] },
      { subnet: '192.0.2.0/24', gateway: '192.0.2.1' },
      { subnet6: '2001:db8::/64' },
    ])
      assert.deepEqual(
        one(nic(0, {}, network), settings),
        {
          index: 0,
          mac: 'aa:00:00:00:00:00',
          name: 'snf0',
          source: 'default',
          ipv4: { method: 'dhcp' },
          ipv6: 'slaac',
        },
        JSON.stringify(network),
      );
  });

  it('several NICs: Ganeti order, snf<index> names, lower-case MACs', () => {
    const models = networkModel(
      doc([
        nic(2, { mac: 'AA:00:00:00:00:02' }, { gateway6: 'fe80::1' }),
        nic(0, { ip: '192.0.2.10' }, NET),
        nic(1, { ip: '198.51.100.7' }, { subnet: '198.51.100.0/24', tags: ['auto'] }),
      ]),
    );
    assert.deepEqual(
      models.map((m) => [m.index, m.name, m.mac, m.ipv4?.method, m.ipv6]),
      [
        [0, 'snf0', 'aa:00:00:00:00:00', 'static', undefined],
        [1, 'snf1', 'aa:00:00:00:00:01', 'dhcp', undefined],
        [2, 'snf2', 'aa:00:00:00:00:02', undefined, 'slaac'],
      ],
    );
  });

  it('bad input is refused with the NIC and the value', () => {
    assert.throws(
      () => firstOfTwo(nic(0, { ip: '192.0.2.10' }, { subnet: '192.0.2.0' })),
      /NIC 0: network subnet '192\.0\.2\.0' is not an IPv4 subnet/,
    );
    assert.throws(
      () => firstOfTwo(nic(0, { ip: '2001:db8::5' }, { subnet: '192.0.2.0/24' })),
      /NIC 0: IP '2001:db8::5' is not an IPv4 address/,
    );
    assert.throws(() => firstOfTwo(nic(0, { mac: 'aa:00' })), /NIC 0: MAC address 'aa:00'/);
    assert.throws(
      () => networkModel(doc([nic(0), nic(1, { mac: 'AA:00:00:00:00:00' })])),
      /NICs 0 and 1 have the same MAC address aa:00:00:00:00:00/,
    );
  });
});

describe('network renderers: exact output', () => {
  it('systemd .link files and the udev rule name NICs by MAC address', () => {
    assert.deepEqual(renderLinkFiles([STATIC, DYNAMIC]), [
      {
        path: '/etc/systemd/network/10-snf-image-0.link',
        mode: 0o644,
        content:
          "# Written by snf-image's ConfigureNetwork task: NIC 0 is named snf0 after its MAC address.\n[Match]\nMACAddress=aa:00:00:12:34:56\nPermanentMACAddress=aa:00:00:12:34:56\n\n[Link]\nName=snf0\n",
      },
      {
        path: '/etc/systemd/network/10-snf-image-1.link',
        mode: 0o644,
        content:
          "# Written by snf-image's ConfigureNetwork task: NIC 1 is named snf1 after its MAC address.\n[Match]\nMACAddress=aa:00:00:ab:cd:ef\nPermanentMACAddress=aa:00:00:ab:cd:ef\n\n[Link]\nName=snf1\n",
      },
    ]);
    assert.deepEqual(renderUdevRules([STATIC, DYNAMIC]), [
      {
        path: '/etc/udev/rules.d/70-snf-image-net.rules',
        mode: 0o644,
        content:
          "# Written by snf-image's ConfigureNetwork task: NICs named after their MAC address.\n" +
          'SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="aa:00:00:12:34:56", ATTR{type}=="1", NAME="snf0"\n' +
          'SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="aa:00:00:ab:cd:ef", ATTR{type}=="1", NAME="snf1"\n',
      },
    ]);
  });

  it('ifupdown', () => {
    assert.deepEqual(renderIfupdown([STATIC, DYNAMIC]), [
      {
        path: '/etc/network/interfaces',
        mode: 0o644,
        content: `# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).
# Written by snf-image's ConfigureNetwork task. Interface snf<i> is the NIC
# with the MAC address noted above its stanza: snf-image names it so in
# /etc/systemd/network/10-snf-image-<i>.link (or /etc/udev/rules.d/70-snf-image-net.rules).

# The loopback network interface
auto lo
iface lo inet loopback

# NIC 0, MAC aa:00:00:12:34:56
auto snf0
allow-hotplug snf0
iface snf0 inet static
    address 192.0.2.10
    netmask 255.255.255.0
    gateway 192.0.2.1

# NIC 1, MAC aa:00:00:ab:cd:ef
auto snf1
allow-hotplug snf1
iface snf1 inet dhcp
iface snf1 inet6 auto
    privext 0
`,
      },
    ]);
    const content = (n: NicModel) => renderIfupdown([n])[0]!.content.split('# NIC 0')[1];
    assert.equal(
      content({ ...STATIC, ipv4: { method: 'dhcp' }, ipv6: 'slaac_dhcp' }),
      ', MAC aa:00:00:12:34:56\nauto snf0\nallow-hotplug snf0\niface snf0 inet dhcp\niface snf0 inet6 auto\n    privext 0\n    dhcp 1\n',
    );
    assert.equal(
      content({ ...STATIC, ipv4: undefined, ipv6: 'dhcpv6' }),
      ', MAC aa:00:00:12:34:56\nauto snf0\nallow-hotplug snf0\niface snf0 inet6 dhcp\n',
    );
    assert.equal(
      content({ ...STATIC, ipv4: undefined }),
      ', MAC aa:00:00:12:34:56\nauto snf0\nallow-hotplug snf0\niface snf0 inet manual\n',
    );
  });

  it('ifcfg', () => {
    assert.deepEqual(renderIfcfg([STATIC, DYNAMIC]), [
      {
        path: '/etc/sysconfig/network-scripts/ifcfg-snf0',
        mode: 0o644,
        content:
          "# Written by snf-image's ConfigureNetwork task (NIC 0).\nDEVICE=snf0\nHWADDR=aa:00:00:12:34:56\nTYPE=Ethernet\nONBOOT=yes\nNM_CONTROLLED=yes\nBOOTPROTO=static\nIPADDR=192.0.2.10\nNETMASK=255.255.255.0\nGATEWAY=192.0.2.1\nIPV6INIT=no\n",
      },
      {
        path: '/etc/sysconfig/network-scripts/ifcfg-snf1',
        mode: 0o644,
        content:
          "# Written by snf-image's ConfigureNetwork task (NIC 1).\nDEVICE=snf1\nHWADDR=aa:00:00:ab:cd:ef\nTYPE=Ethernet\nONBOOT=yes\nNM_CONTROLLED=yes\nBOOTPROTO=dhcp\nIPV6INIT=yes\nIPV6_AUTOCONF=yes\n",
      },
    ]);
    const tail = (n: NicModel) => renderIfcfg([n])[0]!.content.split('NM_CONTROLLED=yes\n')[1];
    assert.equal(
      tail({ ...STATIC, ipv4: undefined, ipv6: 'slaac_dhcp' }),
      'BOOTPROTO=none\nIPV4_FAILURE_FATAL=no\nIPV6INIT=yes\nIPV6_AUTOCONF=yes\nDHCPV6C=yes\nDHCPV6C_OPTIONS="-S"\n',
    );
    assert.equal(
      tail({ ...STATIC, ipv4: { method: 'dhcp' }, ipv6: 'dhcpv6' }),
      'BOOTPROTO=dhcp\nIPV6INIT=yes\nDHCPV6C=yes\n',
    );
  });

  it('NetworkManager keyfiles (0600, stable UUID from the MAC address)', () => {
    const uuid0 = nameUuid('snf-image:aa:00:00:12:34:56');
    const uuid1 = nameUuid('snf-image:aa:00:00:ab:cd:ef');
    assert.match(uuid0, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(uuid0, uuid1);
    assert.equal(
      nameUuid('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8'),
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
      'RFC 4122 version 5',
    );
    assert.deepEqual(renderNetworkManager([STATIC, DYNAMIC]), [
      {
        path: '/etc/NetworkManager/system-connections/snf-image-0.nmconnection',
        mode: 0o600,
        content: `# Written by snf-image's ConfigureNetwork task (NIC 0).\n[connection]\nid=snf-image NIC 0\nuuid=${uuid0}\ntype=ethernet\nautoconnect=true\nautoconnect-priority=100\n\n[ethernet]\nmac-address=aa:00:00:12:34:56\n\n[ipv4]\nmethod=manual\naddress1=192.0.2.10/24,192.0.2.1\n\n[ipv6]\nmethod=ignore\n`,
      },
      {
        path: '/etc/NetworkManager/system-connections/snf-image-1.nmconnection',
        mode: 0o600,
        content: `# Written by snf-image's ConfigureNetwork task (NIC 1).\n[connection]\nid=snf-image NIC 1\nuuid=${uuid1}\ntype=ethernet\nautoconnect=true\nautoconnect-priority=100\n\n[ethernet]\nmac-address=aa:00:00:ab:cd:ef\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\naddr-gen-mode=eui64\nip6-privacy=0\n`,
      },
    ]);
    assert.match(renderNetworkManager([{ ...STATIC, ipv4: undefined }])[0]!.content, /\[ipv4\]\nmethod=disabled\n/);
  });

  it('netplan (0600; renderer only when the image named one)', () => {
    assert.deepEqual(renderNetplan([STATIC, DYNAMIC]), [
      {
        path: '/etc/netplan/50-snf-image.yaml',
        mode: 0o600,
        content: `# Written by snf-image's ConfigureNetwork task.
network:
  version: 2
  ethernets:
    snf0:
      match:
        macaddress: "aa:00:00:12:34:56"
      set-name: snf0
      dhcp4: false
      addresses:
        - 192.0.2.10/24
      routes:
        - to: 0.0.0.0/0
          via: 192.0.2.1
      dhcp6: false
      accept-ra: false
    snf1:
      match:
        macaddress: "aa:00:00:ab:cd:ef"
      set-name: snf1
      dhcp4: true
      dhcp6: false
      accept-ra: true
`,
      },
    ]);
    assert.match(
      renderNetplan([STATIC], { renderer: 'NetworkManager' })[0]!.content,
      /^network:\n {2}version: 2\n {2}renderer: NetworkManager\n {2}ethernets:\n/m,
    );
    assert.match(
      renderNetplan([{ ...DYNAMIC, ipv6: 'slaac_dhcp' }])[0]!.content,
      /dhcp6: true\n {6}accept-ra: true\n$/,
    );
    assert.match(
      renderNetplan([{ ...DYNAMIC, ipv4: undefined, ipv6: undefined }])[0]!.content,
      /dhcp4: false\n {6}dhcp6: false\n {6}accept-ra: false\n {6}link-local: \[\]\n$/,
    );
  });

  it('systemd-networkd', () => {
    assert.deepEqual(renderNetworkd([STATIC, DYNAMIC]), [
      {
        path: '/etc/systemd/network/10-snf-image-0.network',
        mode: 0o644,
        content:
          "# Written by snf-image's ConfigureNetwork task (NIC 0).\n[Match]\nMACAddress=aa:00:00:12:34:56\nPermanentMACAddress=aa:00:00:12:34:56\n\n[Network]\nDHCP=no\nAddress=192.0.2.10/24\nGateway=192.0.2.1\nIPv6AcceptRA=no\n",
      },
      {
        path: '/etc/systemd/network/10-snf-image-1.network',
        mode: 0o644,
        content:
          "# Written by snf-image's ConfigureNetwork task (NIC 1).\n[Match]\nMACAddress=aa:00:00:ab:cd:ef\nPermanentMACAddress=aa:00:00:ab:cd:ef\n\n[Network]\nDHCP=ipv4\nIPv6AcceptRA=yes\n\n[IPv6AcceptRA]\nDHCPv6Client=no\n",
      },
    ]);
    const network = (n: NicModel) => renderNetworkd([n])[0]!.content.split('[Network]\n')[1];
    assert.equal(network({ ...DYNAMIC, ipv6: 'dhcpv6' }), 'DHCP=yes\nIPv6AcceptRA=yes\n');
    assert.equal(network({ ...DYNAMIC, ipv4: undefined, ipv6: 'dhcpv6' }), 'DHCP=ipv6\nIPv6AcceptRA=yes\n');
    assert.equal(network({ ...DYNAMIC, ipv6: 'slaac_dhcp' }), 'DHCP=ipv4\nIPv6AcceptRA=yes\n');
    assert.equal(
      network({ ...DYNAMIC, ipv4: undefined, ipv6: undefined }),
      'DHCP=no\nIPv6AcceptRA=no\nLinkLocalAddressing=no\n',
    );
  });

  it('no file name or match anywhere uses an eth<n> name', () => {
    const nics = networkModel(
      doc(
        [0, 1, 2, 3].map((i) =>
          nic(i, { ip: `192.0.2.${10 + i}` }, { ...NET, gateway6: 'fe80::1', tags: i % 2 ? ['dhcp', 'dhcpv6'] : [] }),
        ),
      ),
    );
    const files = [
      ...renderLinkFiles(nics),
      ...renderUdevRules(nics),
      ...(['ifupdown', 'ifcfg', 'networkmanager', 'netplan', 'networkd'] as const).flatMap((s) => render(s, nics)),
    ];
    assert.equal(files.length, 4 + 1 + 1 + 4 + 4 + 1 + 4);
    for (const file of files) {
      assert.doesNotMatch(file.path, /eth\d/, file.path);
      assert.doesNotMatch(file.content, /eth\d/, file.path);
    }
    for (const n of nics)
      assert.ok(files.filter((f) => f.content.includes(n.mac)).length >= 6, `${n.mac} matched by MAC in every system`);
  });
});

// ---------------------------------------------------------------- synthetic guest trees

function tree(files: Record<string, string>, links: Record<string, string> = {}, dirs: string[] = []): string {
  const root = mkdtempSync(join(tmpdir(), 'snf-net-'));
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  for (const [path, target] of Object.entries(links)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    symlinkSync(target, join(root, path));
  }
  return root;
}

const UDEVD = { 'usr/lib/systemd/systemd-udevd': '' };
const MERGED_USR = { bin: 'usr/bin', sbin: 'usr/sbin', lib: 'usr/lib' };
const WANTS = 'etc/systemd/system/multi-user.target.wants';

const GUESTS = {
  debian: () =>
    tree(
      {
        ...UDEVD,
        'usr/sbin/ifup': '',
        'usr/lib/systemd/systemd-networkd': '',
        'etc/network/interfaces':
          'source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n',
        'etc/debian_version': '12.5\n',
      },
      { ...MERGED_USR, [`${WANTS}/ssh.service`]: '/lib/systemd/system/ssh.service' },
    ),
  ubuntu: () =>
    tree(
      {
        ...UDEVD,
        'usr/sbin/netplan': '',
        'usr/sbin/NetworkManager': '',
        'etc/netplan/50-cloud-init.yaml': 'network:\n  version: 2\n  ethernets:\n    ens3:\n      dhcp4: true\n',
        'etc/network/interfaces': '# ifupdown has been replaced by netplan(5) on this system.\n',
      },
      { ...MERGED_USR, [`${WANTS}/systemd-networkd.service`]: '/lib/systemd/system/systemd-networkd.service' },
    ),
  fedora: () =>
    tree(
      { ...UDEVD, 'usr/sbin/NetworkManager': '', 'etc/redhat-release': 'Fedora release 40\n' },
      {
        ...MERGED_USR,
        [`${WANTS}/NetworkManager.service`]: '/usr/lib/systemd/system/NetworkManager.service',
        'etc/systemd/system/dbus-org.freedesktop.NetworkManager.service':
          '/usr/lib/systemd/system/NetworkManager.service',
      },
      ['etc/sysconfig/network-scripts', 'etc/NetworkManager/system-connections'],
    ),
  networkd: () =>
    tree(
      { ...UDEVD, 'etc/systemd/network/20-wired.network': '[Match]\nName=en*\n\n[Network]\nDHCP=yes\n' },
      {
        ...MERGED_USR,
        'etc/systemd/system/multi-user.target.wants/systemd-networkd.service':
          '/usr/lib/systemd/system/systemd-networkd.service',
        'etc/systemd/system/sockets.target.wants/systemd-networkd.socket':
          '/usr/lib/systemd/system/systemd-networkd.socket',
      },
    ),
  rhel: () =>
    tree({
      'lib/udev/udevd': '',
      'sbin/udevd': '',
      'etc/sysconfig/network-scripts/ifcfg-eth0': 'DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\nHWADDR=52:54:00:00:00:01\n',
      'etc/sysconfig/network-scripts/ifcfg-lo': 'DEVICE=lo\nIPADDR=127.0.0.1\n',
      'etc/sysconfig/network-scripts/ifcfg-eth0.100': 'DEVICE=eth0.100\nVLAN=yes\n',
      'etc/sysconfig/network-scripts/ifcfg-br0': 'DEVICE=br0\nTYPE=Bridge\n',
      'etc/sysconfig/network-scripts/ifcfg-eth1.bak': 'DEVICE=eth1\n',
      'etc/sysconfig/network': 'NETWORKING=no\nHOSTNAME=template\nGATEWAY=10.0.0.1\n',
      'etc/redhat-release': 'CentOS release 6.10 (Final)\n',
    }),
};

describe('network system detection on synthetic guests', () => {
  it('Debian with ifupdown (networkd installed but not enabled)', () => {
    const fs = new GuestFs(GUESTS.debian());
    assert.deepEqual(detectNetworkSystem(fs), { system: 'ifupdown', why: '/etc/network/interfaces exists' });
    assert.equal(detectNaming(fs), 'link');
  });

  it('Ubuntu with netplan (even with NetworkManager installed and networkd enabled)', () => {
    assert.deepEqual(detectNetworkSystem(new GuestFs(GUESTS.ubuntu())), {
      system: 'netplan',
      why: '/etc/netplan has configuration files',
    });
    assert.deepEqual(detectNetworkSystem(new GuestFs(tree({ 'usr/sbin/netplan': '' }, MERGED_USR))), {
      system: 'netplan',
      why: '/usr/sbin/netplan is installed',
    });
  });

  it('Fedora with NetworkManager enabled (before its network-scripts directory)', () => {
    assert.deepEqual(detectNetworkSystem(new GuestFs(GUESTS.fedora())), {
      system: 'networkmanager',
      why: 'NetworkManager.service is enabled',
    });
  });

  it('a guest with systemd-networkd enabled', () => {
    assert.deepEqual(detectNetworkSystem(new GuestFs(GUESTS.networkd())), {
      system: 'networkd',
      why: 'systemd-networkd.service is enabled',
    });
  });

  it('a Red Hat guest with ifcfg network scripts and an older udev', () => {
    const fs = new GuestFs(GUESTS.rhel());
    assert.deepEqual(detectNetworkSystem(fs), { system: 'ifcfg', why: '/etc/sysconfig/network-scripts exists' });
    assert.equal(detectNaming(fs), 'udev-rule');
  });

  it('NM_NETWORKING, NetworkManager only installed, nothing at all', () => {
    assert.equal(detectNetworkSystem(new GuestFs(GUESTS.debian()), { NM_NETWORKING: 'yes' }).system, 'networkmanager');
    assert.deepEqual(detectNetworkSystem(new GuestFs(tree({ 'usr/sbin/NetworkManager': '' }, MERGED_USR))), {
      system: 'networkmanager',
      why: '/usr/sbin/NetworkManager is installed (not enabled in the image)',
    });
    const empty = new GuestFs(tree({ 'etc/hostname': 'x\n' }));
    assert.equal(detectNetworkSystem(empty).system, undefined);
    assert.equal(detectNaming(empty), 'none');
  });
});

// ---------------------------------------------------------------- writing into guests

const NOW = new Date('2025-03-04T05:06:07Z');
const STAMP = '20250304050607';
const read = (root: string, path: string) => readFileSync(join(root, path), 'utf8');
const mode = (root: string, path: string) => statSync(join(root, path)).mode & 0o777;

describe('configuring the network of synthetic guests', () => {
  it('backup names: UTC stamp', () => {
    assert.equal(backupStamp(NOW), STAMP);
  });

  it('Debian/ifupdown: link file, interfaces replaced with a backup, persistent-net rule and cloud-init disabled', () => {
    const root = GUESTS.debian();
    const old = read(root, 'etc/network/interfaces');
    mkdirSync(join(root, 'etc/udev/rules.d'), { recursive: true });
    writeFileSync(
      join(root, 'etc/udev/rules.d/70-persistent-net.rules'),
      '# generated\nSUBSYSTEM=="net", ACTION=="add", ATTR{address}=="AA:00:00:12:34:56", NAME="eth0"\nSUBSYSTEM=="net", ACTION=="add", ATTR{address}=="52:54:00:00:00:09", NAME="eth1"\n',
    );
    mkdirSync(join(root, 'etc/cloud'));
    const fs = new GuestFs(root);
    const result = applyNetwork(fs, 'ifupdown', [STATIC], NOW);
    assert.equal(result.naming, 'link');
    assert.deepEqual(result.warnings, []);
    assert.equal(read(root, 'etc/systemd/network/10-snf-image-0.link'), renderLinkFiles([STATIC])[0]!.content);
    assert.equal(read(root, 'etc/network/interfaces'), renderIfupdown([STATIC])[0]!.content);
    assert.equal(read(root, `etc/network/interfaces.snf-image-${STAMP}`), old);
    assert.equal(
      read(root, 'etc/udev/rules.d/70-persistent-net.rules'),
      '# generated\n# disabled by snf-image, which names this NIC itself: SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="AA:00:00:12:34:56", NAME="eth0"\nSUBSYSTEM=="net", ACTION=="add", ATTR{address}=="52:54:00:00:00:09", NAME="eth1"\n',
    );
    assert.ok(existsSync(join(root, `etc/udev/rules.d/70-persistent-net.rules.snf-image-${STAMP}`)));
    assert.match(read(root, CLOUD_INIT_PATH.slice(1)), /^network: \{config: disabled\}$/m);
    assert.deepEqual(
      result.backups.map((b) => b.split(' -> ')[0]),
      ['/etc/udev/rules.d/70-persistent-net.rules', '/etc/network/interfaces'],
    );

    const again = applyNetwork(fs, 'ifupdown', [STATIC], new Date('2025-03-04T05:06:08Z'));
    assert.deepEqual([again.written, again.backups, again.disabled], [[], [], []], 'a second run changes nothing');
  });

  it("Ubuntu/netplan: the image's netplan files disabled, its NetworkManager renderer kept, 0600", () => {
    const root = GUESTS.ubuntu();
    writeFileSync(
      join(root, 'etc/netplan/01-network-manager-all.yaml'),
      'network:\n  version: 2\n  renderer: NetworkManager\n',
    );
    const result = applyNetwork(new GuestFs(root), 'netplan', [STATIC, DYNAMIC], NOW);
    assert.equal(result.naming, 'netplan');
    assert.deepEqual(readdirSync(join(root, 'etc/netplan')).sort(), [
      `01-network-manager-all.yaml.snf-image-${STAMP}`,
      `50-cloud-init.yaml.snf-image-${STAMP}`,
      '50-snf-image.yaml',
    ]);
    assert.equal(
      read(root, 'etc/netplan/50-snf-image.yaml'),
      renderNetplan([STATIC, DYNAMIC], { renderer: 'NetworkManager' })[0]!.content,
    );
    assert.equal(mode(root, 'etc/netplan/50-snf-image.yaml'), 0o600);
    assert.ok(!existsSync(join(root, 'etc/systemd/network')), 'netplan names the NICs itself (set-name)');
  });

  it('Fedora/NetworkManager: keyfiles 0600 root, stale keyfile of an earlier run disabled with .bak', () => {
    const root = GUESTS.fedora();
    writeFileSync(join(root, 'etc/NetworkManager/system-connections/snf-image-3.nmconnection'), '[connection]\n', {
      mode: 0o600,
    });
    const result = applyNetwork(new GuestFs(root), 'networkmanager', [STATIC, DYNAMIC], NOW);
    for (const f of renderNetworkManager([STATIC, DYNAMIC])) {
      assert.equal(read(root, f.path.slice(1)), f.content);
      assert.equal(mode(root, f.path.slice(1)), 0o600);
      assert.equal(statSync(join(root, f.path)).uid, 0);
    }
    assert.deepEqual(result.disabled, [
      `/etc/NetworkManager/system-connections/snf-image-3.nmconnection -> /etc/NetworkManager/system-connections/snf-image-3.nmconnection.snf-image-${STAMP}.bak`,
    ]);
    assert.equal(
      mode(root, `etc/NetworkManager/system-connections/snf-image-3.nmconnection.snf-image-${STAMP}.bak`),
      0o600,
    );
    assert.ok(existsSync(join(root, 'etc/systemd/network/10-snf-image-1.link')));
  });

  it("networkd: one .network per NIC next to the link files; the image's name-matched file stays", () => {
    const root = GUESTS.networkd();
    applyNetwork(new GuestFs(root), 'networkd', [STATIC, DYNAMIC], NOW);
    assert.deepEqual(readdirSync(join(root, 'etc/systemd/network')).sort(), [
      '10-snf-image-0.link',
      '10-snf-image-0.network',
      '10-snf-image-1.link',
      '10-snf-image-1.network',
      '20-wired.network',
    ]);
    assert.equal(read(root, 'etc/systemd/network/10-snf-image-1.network'), renderNetworkd([DYNAMIC])[0]!.content);
  });

  it('RHEL/ifcfg: udev rule naming, old Ethernet ifcfg files disabled (.bak), global gateway commented out', () => {
    const root = GUESTS.rhel();
    const result = applyNetwork(new GuestFs(root), 'ifcfg', [STATIC], NOW);
    assert.equal(result.naming, 'udev-rule');
    const dir = 'etc/sysconfig/network-scripts';
    assert.deepEqual(readdirSync(join(root, dir)).sort(), [
      'ifcfg-br0',
      'ifcfg-eth0.100',
      `ifcfg-eth0.snf-image-${STAMP}.bak`,
      'ifcfg-eth1.bak',
      'ifcfg-lo',
      'ifcfg-snf0',
    ]);
    assert.equal(read(root, `${dir}/ifcfg-snf0`), renderIfcfg([STATIC])[0]!.content);
    assert.equal(read(root, 'etc/udev/rules.d/70-snf-image-net.rules'), renderUdevRules([STATIC])[0]!.content);
    assert.equal(
      read(root, 'etc/sysconfig/network'),
      'NETWORKING=yes\nHOSTNAME=template\n# disabled by snf-image (gateways are in ifcfg-snf<i>): GATEWAY=10.0.0.1\n',
    );
    assert.equal(
      read(root, `etc/sysconfig/network.snf-image-${STAMP}`),
      'NETWORKING=no\nHOSTNAME=template\nGATEWAY=10.0.0.1\n',
    );
  });

  it('ifupdown without any udev: warning, nothing changed', () => {
    const root = tree({ 'etc/network/interfaces': 'auto eth0\niface eth0 inet dhcp\n' });
    const result = applyNetwork(new GuestFs(root), 'ifupdown', [STATIC], NOW);
    assert.match(result.warnings[0] ?? '', /no udev/);
    assert.deepEqual(readdirSync(join(root, 'etc/network')), ['interfaces']);
    assert.ok(!existsSync(join(root, 'etc/systemd')));
  });

  it('a planted link out of the guest is replaced, never followed', () => {
    const outside = mkdtempSync(join(tmpdir(), 'snf-outside-'));
    writeFileSync(join(outside, 'interfaces'), 'host file\n');
    const root = tree(
      { ...UDEVD },
      { 'etc/network/interfaces': join(outside, 'interfaces'), 'etc/systemd/network': outside },
    );
    applyNetwork(new GuestFs(root), 'ifupdown', [STATIC], NOW);
    assert.equal(readFileSync(join(outside, 'interfaces'), 'utf8'), 'host file\n');
    assert.deepEqual(readdirSync(outside), ['interfaces']);
    assert.ok(!lstatSync(join(root, 'etc/network/interfaces')).isSymbolicLink());
  });

  it('helpers: Ethernet ifcfg files, naming rules, /etc/sysconfig/network', () => {
    assert.equal(isEthernetIfcfg('ifcfg-ens3', 'TYPE="Ethernet"\n'), true);
    assert.equal(isEthernetIfcfg('ifcfg-bond0', 'TYPE=Bond\n'), false);
    assert.equal(isEthernetIfcfg('ifcfg-eth0~', ''), false);
    assert.equal(isEthernetIfcfg('ifcfg-x', 'DEVICE=lo\n'), false);
    assert.equal(
      withoutNamingRules('# x\nATTR{address}=="aa:00:00:12:34:56", NAME="eth0"\n', ['aa:00:00:12:34:56']),
      '# x\n# disabled by snf-image, which names this NIC itself: ATTR{address}=="aa:00:00:12:34:56", NAME="eth0"\n',
    );
    assert.equal(
      sysconfigNetwork('NETWORKING=yes\nGATEWAYDEV=eth0\n'),
      'NETWORKING=yes\n# disabled by snf-image (gateways are in ifcfg-snf<i>): GATEWAYDEV=eth0\n',
    );
  });
});

describe('ConfigureNetwork task', () => {
  function context(
    target: string,
    nics: Nic[],
    properties: Record<string, string> = {},
  ): HelperContext & { infos: string[]; warnings: string[] } {
    const infos: string[] = [];
    const warnings: string[] = [];
    const config = { nics, network: SETTINGS } as unknown as ConfigDocument;
    return {
      config,
      disk: '/dev/vdb',
      disks: ['/dev/vdb'],
      properties: { OSFAMILY: 'linux', ...properties },
      target,
      mounts: [],
      warn: (m) => warnings.push(m),
      info: (m) => infos.push(m),
      infos,
      warnings,
    };
  }

  it('is in the task table as specified', () => {
    const task = TASKS.find((t) => t.name === 'ConfigureNetwork');
    assert.ok(task);
    assert.deepEqual(
      [task.order, task.runAfter, task.runBefore, task.families, task.requires],
      [50, ['MountImage'], ['EnforcePersonality'], ['linux', 'freebsd', 'openbsd', 'netbsd'], []],
    );
    assert.deepEqual(task.attributes, {
      excludable: true,
      fsResize: false,
      mounted: true,
      cloudInitExcludable: false,
      overwritable: true,
    });
  });

  it("CLOUD_INIT on a known system (upstream's 50ConfigureNetwork): configured here, the image's catch-all set aside, cloud-init kept off the network", async () => {
    // The layout of Debian 13's cloud images: netplan with its catch-all 90-default.yaml.
    const root = tree({
      ...UDEVD,
      'usr/sbin/netplan': '',
      'etc/cloud/cloud.cfg': 'datasource_list: [ NoCloud, None ]\n',
      'etc/netplan/90-default.yaml':
        'network:\n  version: 2\n  ethernets:\n    all-en:\n      match:\n        name: en*\n      dhcp4: true\n',
    });
    const ctx = context(root, [nic(0, { mac: 'aa:00:00:12:34:56', ip: '192.0.2.10' }, NET)], { CLOUD_INIT: 'yes' });
    await configureNetwork(ctx);
    const netplan = readdirSync(join(root, 'etc/netplan')).sort();
    assert.deepEqual(
      netplan.filter((f) => f.endsWith('.yaml')),
      ['50-snf-image.yaml'],
    );
    assert.match(
      read(root, 'etc/netplan/50-snf-image.yaml'),
      /macaddress: "aa:00:00:12:34:56"[\s\S]*192\.0\.2\.10\/24/,
    );
    assert.equal(
      read(root, 'etc/cloud/cloud.cfg.d/99-snf-image-network.cfg').split('\n').at(-2),
      'network: {config: disabled}',
    );
    assert.ok(!existsSync(join(root, 'var/lib/cloud/seed/nocloud-net/network-config')));
    assert.deepEqual(ctx.warnings, []);
  });

  it('CLOUD_INIT on a system it does not know: network-config in the seed for cloud-init, an old disabling file removed', async () => {
    const root = tree({
      'etc/cloud/cloud.cfg.d/99-snf-image-network.cfg': 'network: {config: disabled}\n',
    });
    const ctx = context(root, [nic(0, { mac: 'aa:00:00:12:34:56', ip: '192.0.2.10' }, NET)], { CLOUD_INIT: 'yes' });
    await configureNetwork(ctx);
    const net = JSON.parse(read(root, 'var/lib/cloud/seed/nocloud-net/network-config')) as {
      ethernets: Record<string, { match: { macaddress: string }; addresses: string[] }>;
    };
    assert.deepEqual(net.ethernets.snf0?.match, { macaddress: 'aa:00:00:12:34:56' });
    assert.deepEqual(net.ethernets.snf0?.addresses, ['192.0.2.10/24']);
    assert.equal(mode(root, 'var/lib/cloud/seed/nocloud-net/network-config'), 0o600);
    assert.ok(!existsSync(join(root, 'etc/cloud/cloud.cfg.d/99-snf-image-network.cfg')));
    assert.match(ctx.warnings[0] ?? '', /letting cloud-init do it/);
  });

  it('does nothing without NICs', async () => {
    const root = GUESTS.debian();
    const before = read(root, 'etc/network/interfaces');
    const ctx = context(root, []);
    await configureNetwork(ctx);
    assert.equal(read(root, 'etc/network/interfaces'), before);
    assert.ok(!existsSync(join(root, 'etc/systemd/network')));
    assert.deepEqual(ctx.warnings, []);
  });

  it('configures a Debian guest from the NIC environment', async () => {
    const root = GUESTS.debian();
    const ctx = context(root, [nic(0, { mac: 'aa:00:00:12:34:56', ip: '192.0.2.10' }, NET)]);
    await configureNetwork(ctx);
    assert.equal(
      read(root, 'etc/network/interfaces'),
      renderIfupdown([{ ...STATIC, mac: 'aa:00:00:12:34:56' }])[0]!.content,
    );
    assert.match(read(root, 'etc/systemd/network/10-snf-image-0.link'), /MACAddress=aa:00:00:12:34:56\n/);
    assert.ok(
      ctx.infos.includes('NIC 0: snf0 aa:00:00:12:34:56 ipv4 static 192.0.2.10/24 via 192.0.2.1, no ipv6'),
      ctx.infos.join('\n'),
    );
    assert.deepEqual(ctx.warnings, []);
  });

  it('warns and changes nothing when the image has no known network system', async () => {
    const root = tree({ 'etc/hostname': 'x\n' });
    const ctx = context(root, [nic(0)]);
    await configureNetwork(ctx);
    assert.match(ctx.warnings[0] ?? '', /^Don't know how to configure the network of this image/);
    assert.deepEqual(readdirSync(join(root, 'etc')), ['hostname']);
  });

  it('fails with one line on inconsistent NIC data', async () => {
    await assert.rejects(
      configureNetwork(context(GUESTS.debian(), [nic(0, { ip: '192.0.2.10' }, { subnet: 'bogus' }), nic(1)])),
      (e: unknown) => e instanceof TaskError && /^ConfigureNetwork: NIC 0: network subnet 'bogus'/.test(e.message),
    );
  });
});
