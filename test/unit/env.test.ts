import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGanetiEnv } from '../../src/ganeti/env.ts';
import { ValidationError } from '../../src/util/errors.ts';
import { CREATE_ENV, EXPORT_ENV, IMPORT_ENV, RENAME_ENV, VERIFY_ENV } from '../fixtures/ganeti-env.ts';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ValidationError) return [...error.problems];
    throw error;
  }
  assert.fail('expected a ValidationError');
}

describe('Ganeti environment', () => {
  it('parses the real create environment', () => {
    const env = parseGanetiEnv(CREATE_ENV, 'create');
    assert.equal(env.core.apiVersion, 20);
    assert.equal(env.core.osName, 'snf-image');
    assert.equal(env.core.variant, 'default');
    assert.equal(env.core.debugLevel, 0);
    assert.equal(env.core.osParams.get('img_id'), 'foo');
    const inst = env.instance;
    assert.ok(inst);
    assert.equal(inst.name, 'inst1.gnt.test');
    assert.equal(inst.reinstall, false);
    assert.equal(inst.hypervisor, 'kvm');
    assert.equal(inst.ctime, 1795300606.669569);
    assert.deepEqual(inst.secondaryNodes, []);
    assert.equal(inst.hvParams.disk_type, 'paravirtual');
    assert.equal(inst.hvParams.kernel_path, '');
    assert.equal(inst.beParams.maxmem, '128');
    assert.equal(inst.disks.length, 1);
    assert.deepEqual(inst.disks[0], {
      index: 0,
      path: CREATE_ENV.DISK_0_PATH,
      uri: undefined,
      access: 'rw',
      uuid: 'fabce853-46aa-4328-9631-40d76253ad75',
      name: undefined,
      sizeMiB: 1024,
      frontendType: 'paravirtual',
      backendType: 'file:loop',
    });
    assert.equal(inst.nics[0]?.mac, 'aa:00:00:6b:74:80');
    assert.equal(inst.nics[0]?.mode, 'bridged');
    assert.deepEqual(inst.nics[0]?.network.tags, []);
  });

  it('verify gets only the core set', () => {
    const env = parseGanetiEnv(VERIFY_ENV, 'verify');
    assert.equal(env.instance, undefined);
    assert.equal(env.core.osParams.size, 3);
  });

  it('keeps set-but-empty apart from unset', () => {
    const withEmpty = parseGanetiEnv({ ...VERIFY_ENV, OSP_IMG_PASSWD: '' }, 'verify');
    assert.equal(withEmpty.core.osParams.get('img_passwd'), '');
    const { OSP_IMG_PASSWD: _dropped, ...rest } = VERIFY_ENV;
    const unset = parseGanetiEnv(rest, 'verify');
    assert.equal(unset.core.osParams.has('img_passwd'), false);
    assert.equal(parseGanetiEnv({ ...VERIFY_ENV, OS_VARIANT: '' }, 'verify').core.variant, '');
  });

  it('marks a reinstall', () => {
    assert.equal(parseGanetiEnv({ ...CREATE_ENV, INSTANCE_REINSTALL: '1' }, 'create').instance?.reinstall, true);
  });

  it('parses network fields of a NIC in a Ganeti network', () => {
    const env = parseGanetiEnv(
      {
        ...CREATE_ENV,
        NIC_0_IP: '198.51.100.31',
        NIC_0_NETWORK_NAME: 'net1',
        NIC_0_NETWORK_TAGS: 'nfdhcpd dhcpv6',
        NIC_0_NETWORK_SUBNET: '198.51.100.0/24',
        NIC_0_NETWORK_GATEWAY: '198.51.100.1',
        NIC_0_NETWORK_SUBNET6: '2001:db8::/64',
        NIC_0_NETWORK_GATEWAY6: '2001:db8::1',
      },
      'create',
    );
    const nic = env.instance?.nics[0];
    assert.equal(nic?.ip, '198.51.100.31');
    assert.deepEqual(nic?.network.tags, ['nfdhcpd', 'dhcpv6']);
    assert.equal(nic?.network.gateway6, '2001:db8::1');
  });

  it('parses export, import and rename additions', () => {
    const exp = parseGanetiEnv(EXPORT_ENV, 'export').export;
    assert.equal(exp?.diskPath, EXPORT_ENV.EXPORT_DISK_PATH);
    assert.equal(exp?.sizeFd, 11);
    const imp = parseGanetiEnv(IMPORT_ENV, 'import').import;
    assert.equal(imp?.index, 0);
    assert.equal(parseGanetiEnv(RENAME_ENV, 'rename').oldInstanceName, 'inst1.gnt.test');
  });

  it('names the variable and the rule in every error', () => {
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv({ ...CREATE_ENV, DISK_0_SIZE: 'big' }, 'create')),
      ['DISK_0_SIZE: must be a whole number'],
    );
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv({ ...CREATE_ENV, NIC_0_MAC: 'nope' }, 'create')),
      ['NIC_0_MAC: must be a MAC address like aa:00:00:12:34:56'],
    );
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv({ ...CREATE_ENV, DISK_0_ACCESS: 'rx' }, 'create')),
      ['DISK_0_ACCESS: must be rw or ro'],
    );
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv({ ...CREATE_ENV, OS_API_VERSION: '5' }, 'create')),
      ['OS_API_VERSION: must be 10, 15 or 20'],
    );
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv({ ...CREATE_ENV, OS_API_VERSION: '15' }, 'create')),
      ['OS_API_VERSION: snf-image implements OS API 20, Ganeti asked for 15'],
    );
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv({ ...CREATE_ENV, DISK_0_PATH: 'relative' }, 'create')),
      ['DISK_0_PATH: must be an absolute path'],
    );
    const { INSTANCE_NAME: _n, ...noName } = CREATE_ENV;
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv(noName, 'create')),
      ['INSTANCE_NAME: is required but not set'],
    );
    const { DISK_0_PATH: _p, ...noPath } = CREATE_ENV;
    assert.match(problemsOf(() => parseGanetiEnv(noPath, 'create'))[0] ?? '', /^DISK_0_PATH: is required/);
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv({ ...CREATE_ENV, DISK_COUNT: '0' }, 'create')),
      ['DISK_COUNT: must be at least 1 (snf-image writes the image to disk 0)'],
    );
    const { OLD_INSTANCE_NAME: _o, ...noOld } = RENAME_ENV;
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv(noOld, 'rename')),
      ['OLD_INSTANCE_NAME: is required by rename but not set'],
    );
    const { EXPORT_DISK_PATH: _e, EXPORT_DEVICE: _d, ...noExport } = EXPORT_ENV;
    assert.match(problemsOf(() => parseGanetiEnv(noExport, 'export'))[0] ?? '', /^EXPORT_DISK_PATH: is required/);
    assert.deepEqual(
      problemsOf(() => parseGanetiEnv({ ...EXPORT_ENV, EXP_SIZE_FD: 'x' }, 'export')),
      ['EXP_SIZE_FD: must be a file descriptor number'],
    );
  });

  it('reports every problem at once', () => {
    const problems = problemsOf(() =>
      parseGanetiEnv({ ...CREATE_ENV, DISK_0_SIZE: 'x', NIC_0_MAC: 'y', INSTANCE_CTIME: 'z' }, 'create'),
    );
    assert.equal(problems.length, 3);
  });
});
