/**
 * The environment of CUSTOM_TASK and in-image overrides: upstream snf-image 0.23's
 * "Configuration Tasks Environment" (docs/advanced.rst; the rules file of
 * snf-image-host/common.sh.in and snf-image-host/create), without the secrets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PERSONALITY_ENV_LIMIT, taskEnv } from '../../helper/programs/task-env.ts';
import { TASKS } from '../../helper/task-table.ts';
import { buildConfigDocument } from '../../src/helper-vm/run-helper.ts';
import type { ConfigDocument } from '../../src/helper-vm/config-document.ts';

const SECRETS = [
  'pw-secret-1',
  '$6$salt$hashsecret',
  'ssh-ed25519 AAAAsecretkey',
  'userdata-secret',
  'PRODUCT-KEY-SECRET',
];

const config: ConfigDocument = {
  version: 1,
  operation: 'create',
  hostname: 'vm1.example.org',
  imageFormat: 'diskdump',
  properties: {},
  disks: [
    { index: 0, serial: 'snf-disk-0' },
    { index: 1, serial: 'snf-disk-1' },
  ],
  nics: [
    {
      index: 0,
      mac: 'aa:00:00:12:34:56',
      ip: '192.0.2.10',
      uuid: 'nic-uuid-0',
      name: 'public',
      mode: 'bridged',
      link: 'br0',
      bridge: 'br0',
      frontendType: 'paravirtual',
      network: {
        name: 'net1',
        uuid: 'net-uuid-1',
        tags: ['nfdhcpd', 'public'],
        subnet: '192.0.2.0/24',
        gateway: '192.0.2.1',
        subnet6: '2001:db8::/64',
        gateway6: '2001:db8::1',
        macPrefix: 'aa:00:00',
      },
    },
    { index: 1, mac: 'aa:00:00:12:34:57', mode: 'routed', network: { tags: [] } },
  ],
  network: {
    dhcpTags: ['auto', 'dhcp', 'nfdhcpd'],
    statefulDhcpv6Tags: ['dhcpv6', 'stateful_dhcpv6'],
    statelessDhcpv6Tags: ['nfdhcpd', 'stateless_dhcpv6'],
    defaultNicConfig: 'dhcp',
  },
  secrets: {
    password: SECRETS[0],
    passwordHash: SECRETS[1],
    authKeys: SECRETS[2],
    cloudUserdata: SECRETS[3],
    productKey: SECRETS[4],
  },
  personality: [{ path: '/etc/motd', contents: Buffer.from('hello').toString('base64'), mode: 0o644 }],
  hostKeys: {},
  windowsTimezone: 'GMT Standard Time',
  cloudInitDebug: true,
  debug: false,
};

const ctx = {
  target: '/run/snf-target',
  disks: ['/dev/vdb', '/dev/vdc'],
  properties: { OSFAMILY: 'linux', ROOT_PARTITION: '1', CUSTOM_TASK: 'ZWNobwo=', SWAP: '2:512' },
  config,
  resizedPartition: '/dev/vdb1',
};

describe('the environment of CUSTOM_TASK and overrides (upstream docs/advanced.rst)', () => {
  it("has every upstream variable with the SNF_IMAGE_ prefix, Ganeti's NIC variables included", () => {
    const env = taskEnv(ctx, { target: ctx.target, disks: true });
    const upstream = Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith('SNF_IMAGE_')));
    assert.deepEqual(upstream, {
      SNF_IMAGE_TARGET: '/run/snf-target',
      SNF_IMAGE_HOSTNAME: 'vm1.example.org',
      SNF_IMAGE_DEV: '/dev/vdb',
      SNF_IMAGE_DEV_COUNT: '2',
      SNF_IMAGE_DEV_0: '/dev/vdb',
      SNF_IMAGE_DEV_1: '/dev/vdc',
      SNF_IMAGE_RESIZE_PART: '1',
      SNF_IMAGE_TYPE: 'diskdump',
      SNF_IMAGE_PERSONALITY: JSON.stringify(config.personality),
      SNF_IMAGE_NIC_COUNT: '2',
      SNF_IMAGE_NIC_0_MAC: 'aa:00:00:12:34:56',
      SNF_IMAGE_NIC_0_IP: '192.0.2.10',
      SNF_IMAGE_NIC_0_UUID: 'nic-uuid-0',
      SNF_IMAGE_NIC_0_NAME: 'public',
      SNF_IMAGE_NIC_0_MODE: 'bridged',
      SNF_IMAGE_NIC_0_LINK: 'br0',
      SNF_IMAGE_NIC_0_BRIDGE: 'br0',
      SNF_IMAGE_NIC_0_FRONTEND_TYPE: 'paravirtual',
      SNF_IMAGE_NIC_0_NETWORK_NAME: 'net1',
      SNF_IMAGE_NIC_0_NETWORK_UUID: 'net-uuid-1',
      SNF_IMAGE_NIC_0_NETWORK_TAGS: 'nfdhcpd public',
      SNF_IMAGE_NIC_0_NETWORK_SUBNET: '192.0.2.0/24',
      SNF_IMAGE_NIC_0_NETWORK_GATEWAY: '192.0.2.1',
      SNF_IMAGE_NIC_0_NETWORK_SUBNET6: '2001:db8::/64',
      SNF_IMAGE_NIC_0_NETWORK_GATEWAY6: '2001:db8::1',
      SNF_IMAGE_NIC_0_NETWORK_MAC_PREFIX: 'aa:00:00',
      SNF_IMAGE_NIC_1_MAC: 'aa:00:00:12:34:57',
      SNF_IMAGE_NIC_1_MODE: 'routed',
      SNF_IMAGE_DHCP_TAGS: 'auto dhcp nfdhcpd',
      SNF_IMAGE_STATEFUL_DHCPV6_TAGS: 'dhcpv6 stateful_dhcpv6',
      SNF_IMAGE_STATELESS_DHCPV6_TAGS: 'nfdhcpd stateless_dhcpv6',
      SNF_IMAGE_DEFAULT_NIC_CONFIG: 'dhcp',
      SNF_IMAGE_CLOUD_INIT_DEBUG: 'yes',
      SNF_IMAGE_PROPERTY_OSFAMILY: 'linux',
      SNF_IMAGE_PROPERTY_ROOT_PARTITION: '1',
      SNF_IMAGE_PROPERTY_SWAP: '2:512',
    });
  });

  it('holds no secret and not the CUSTOM_TASK program, with or without disks', () => {
    for (const disks of [true, false]) {
      const text = JSON.stringify(taskEnv(ctx, { target: '/', disks }));
      for (const secret of SECRETS) assert.ok(!text.includes(secret), secret);
      assert.ok(!text.includes('CUSTOM_TASK') && !text.includes('ZWNobwo='));
      for (const name of ['PASSWD', 'PASSWD_HASH', 'AUTH_KEYS', 'CLOUD_USERDATA', 'OS_PRODUCT_KEY'])
        assert.ok(!text.includes(`"SNF_IMAGE_${name}"`), name);
    }
  });

  it('a chrooted override: SNF_IMAGE_TARGET is the guest root "/", no disk it cannot open', () => {
    const env = taskEnv(ctx, { target: '/', disks: false });
    assert.equal(env.SNF_IMAGE_TARGET, '/');
    assert.equal(env.TARGET, '/');
    assert.deepEqual(
      Object.keys(env).filter((name) => /(^|_)DEV(_|$)/.test(name)),
      [],
    );
  });

  it('RESIZE_PART: a partition number of disk 0 only (an LVM volume has none); a large personality is left out', () => {
    const lvm = taskEnv({ ...ctx, resizedPartition: '/dev/mapper/vg-root' }, { target: '/t', disks: true });
    assert.equal(lvm.SNF_IMAGE_RESIZE_PART, undefined);
    assert.equal(lvm.RESIZE_PART, '/dev/mapper/vg-root');
    const nvme = taskEnv(
      { ...ctx, disks: ['/dev/nvme0n1'], resizedPartition: '/dev/nvme0n1p12' },
      { target: '/t', disks: true },
    );
    assert.equal(nvme.SNF_IMAGE_RESIZE_PART, '12');
    const big = [{ path: '/big', contents: 'A'.repeat(PERSONALITY_ENV_LIMIT) }];
    const env = taskEnv({ ...ctx, config: { ...config, personality: big } }, { target: '/t', disks: true });
    assert.equal(env.SNF_IMAGE_PERSONALITY, undefined);
  });

  it("the host's config document carries what the environment needs (img_format, every Ganeti NIC field)", () => {
    const document = buildConfigDocument({
      operation: 'create',
      instance: {
        name: 'vm1',
        disks: [],
        nics: [
          {
            index: 0,
            mac: 'aa:00:00:12:34:56',
            uuid: 'nic-uuid-0',
            name: undefined,
            ip: undefined,
            mode: 'bridged',
            link: 'br0',
            bridge: 'br0',
            frontendType: undefined,
            network: {
              name: 'net1',
              uuid: 'net-uuid-1',
              tags: [],
              subnet: undefined,
              gateway: undefined,
              subnet6: undefined,
              gateway6: undefined,
              macPrefix: 'aa:00:00',
            },
          },
        ],
      } as unknown as Parameters<typeof buildConfigDocument>[0]['instance'],
      params: { imgFormat: 'extdump', imgPersonality: [] } as unknown as Parameters<
        typeof buildConfigDocument
      >[0]['params'],
      properties: {},
      settings: {
        DHCP_TAGS: [],
        STATEFUL_DHCPV6_TAGS: [],
        STATELESS_DHCPV6_TAGS: [],
        DEFAULT_NIC_CONFIG: '',
      } as unknown as Parameters<typeof buildConfigDocument>[0]['settings'],
      monitor: { send() {}, close: async () => {} } as unknown as Parameters<typeof buildConfigDocument>[0]['monitor'],
    });
    assert.equal(document.imageFormat, 'extdump');
    assert.deepEqual(document.nics[0], {
      index: 0,
      mac: 'aa:00:00:12:34:56',
      uuid: 'nic-uuid-0',
      mode: 'bridged',
      link: 'br0',
      bridge: 'br0',
      network: { tags: [], name: 'net1', uuid: 'net-uuid-1', macPrefix: 'aa:00:00' },
    });
  });

  it('RunCustomTask runs for every family upstream runs it for (70RunCustomTask has no OS check)', () => {
    const task = TASKS.find((t) => t.name === 'RunCustomTask');
    assert.deepEqual([...(task?.families ?? [])].sort(), [
      'freebsd',
      'linux',
      'netbsd',
      'openbsd',
      'windows',
      'windows-legacy',
    ]);
  });
});
