/**
 * Fuzzing of what the helper reads from a Linux image's configuration files: os-release,
 * /etc/hosts, /etc/shadow, sshd_config, ifcfg files, udev naming rules,
 * /etc/sysconfig/network and netplan files.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TaskError } from '../../helper/exec.ts';
import {
  isEthernetIfcfg,
  netplanUsesNetworkManager,
  parseAssignments,
  sysconfigNetwork,
  withoutNamingRules,
} from '../../helper/network/apply.ts';
import { authorizedKeysPath, hostsWithName, parseOsRelease, shadowWithPassword } from '../../helper/os/linux.ts';
import { assertLinearTime, fuzz, hostileText, linesOf, parseOrRefuse, repeat, repeatShapes } from '../support/fuzz.ts';

const FRAGMENTS = [
  'ID=',
  'ID_LIKE=',
  '"',
  "'",
  '127.0.0.1',
  '127.0.1.1',
  '\t',
  ' ',
  'root',
  ':',
  '$6$',
  'AuthorizedKeysFile',
  '%h',
  '%u',
  '%%',
  'none',
  'DEVICE=',
  'TYPE=',
  'VLAN=yes',
  'NAME=',
  'ATTR{address}=="aa:00:00:12:34:56"',
  'GATEWAY=',
  'NETWORKING=no',
  'renderer:',
  'NetworkManager',
  '#',
  '\r',
  '$&',
  '$`',
];
const text = fc.oneof(hostileText(300), linesOf(FRAGMENTS, 12));

/** Every reader of one file, as the tasks call them. */
function readAll(t: string): void {
  parseOsRelease(t);
  hostsWithName(t, 'vm1.example.org');
  parseOrRefuse(() => shadowWithPassword(t, ['root'], '$6$salt$hash', 20000), [TaskError]);
  authorizedKeysPath(t, 'user', '/home/user');
  parseAssignments(t);
  isEthernetIfcfg('ifcfg-eth0', t);
  withoutNamingRules(t, ['aa:00:00:12:34:56']);
  sysconfigNetwork(t);
  netplanUsesNetworkManager(t);
}

describe('fuzz: Linux configuration files (helper/os/linux.ts, helper/network/apply.ts)', () => {
  it('reads and edits any file, or refuses it with a one-line TaskError', () => {
    fuzz(
      'Linux files',
      text,
      (t) => {
        readAll(t);
        const hosts = hostsWithName(t, 'vm1.example.org');
        assert.equal(hosts.split('\n').filter((l) => l === '127.0.1.1\tvm1.example.org vm1').length >= 1, true);
      },
      500,
    );
  });

  it('an authorized_keys path keeps the home directory as it is written', () => {
    const home = fc.oneof(
      fc.constantFrom('/home/user', '/home/$&', '/home/$`x', "/home/$'", '/home/$$', '/home/$1', '/'),
      fc.string({ maxLength: 12 }).map((s) => `/${s}`),
    );
    fuzz(
      'authorized_keys path',
      home,
      (h) => {
        assert.equal(authorizedKeysPath('', 'user', h), `${h}/.ssh/authorized_keys`);
        assert.equal(
          authorizedKeysPath('AuthorizedKeysFile .ssh/keys', 'user', h),
          `${h.replace(/\/$/, '')}/.ssh/keys`,
        );
      },
      300,
    );
  });

  it('takes time linear in the file', () => {
    fuzz(
      'Linux files time',
      repeatShapes(':=#"\'{}', [
        'ID=',
        'renderer:',
        '127.0.0.1',
        'AuthorizedKeysFile',
        'NAME=',
        'NETWORKING=',
        'root:',
      ]),
      (shape) => {
        assertLinearTime((n) => repeat(shape, n), readAll);
      },
      100,
    );
  });
});
