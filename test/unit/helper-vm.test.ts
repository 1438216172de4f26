import assert from 'node:assert/strict';
import { fstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readConfigFloppy } from '../../helper/config-floppy.ts';
import {
  buildConfigMedia,
  closeConfigMedia,
  configFloppyImage,
  FLOPPY_BYTES,
} from '../../src/helper-vm/config-media.ts';
import { buildConfigDocument } from '../../src/helper-vm/run-helper.ts';
import { parseConfigDocument } from '../../src/helper-vm/config-document.ts';
import { formatEvent, parseEvent, toMonitorMessage } from '../../src/helper-vm/monitor-protocol.ts';
import { kernelCommandLine, qemuArguments, type QemuCommandInput } from '../../src/helper-vm/qemu-command.ts';
import { loadConfig } from '../../src/config/load.ts';
import { parseGanetiEnv } from '../../src/ganeti/env.ts';
import { parseOsParams, wrapSecrets } from '../../src/ganeti/params.ts';
import { validateJson } from '../../src/schemas/validate.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const helper = { kernel: '/h/kernel', initrd: '/h/initrd', root: '/h/root.img', rootFsType: 'squashfs' };
const base = {
  accel: 'tcg' as const,
  memoryMiB: 512,
  user: 'nobody',
  userOption: 'runas' as const,
  helper,
  media: { floppyFd: 3 },
  disks: [
    { path: '/srv/disk,0', serial: 'snf-disk0' },
    { path: '/dev/vg/d1', serial: 'snf-disk1' },
  ],
  serial: { console: '/w/console', result: '/w/result', monitor: '/w/monitor' },
  debug: false,
};

describe('helper VM command line', () => {
  it('has no network device, no defaults, a sandbox and an unprivileged user', () => {
    const args = qemuArguments(base);
    const text = args.join(' ');
    assert.ok(args.includes('-nodefaults'));
    assert.ok(args.includes('-no-user-config'));
    for (const forbidden of ['-net', '-netdev', '-nic']) assert.ok(!args.includes(forbidden), forbidden);
    assert.doesNotMatch(text, /virtio-net|e1000|rtl8139|user,|tap,/);
    assert.match(text, /-sandbox on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny/);
    assert.deepEqual(args.slice(args.indexOf('-runas'), args.indexOf('-runas') + 2), ['-runas', 'nobody']);
    assert.deepEqual(
      qemuArguments({ ...base, userOption: 'run-with' }).filter((a) => a.startsWith('user=')),
      ['user=nobody'],
    );
    assert.match(text, /file=\/h\/root\.img,format=raw,if=none,id=helper-root,readonly=on/);
  });

  it('attaches the instance disks in order with cache=none and serial numbers, commas escaped', () => {
    const args = qemuArguments(base);
    const drives = args.filter((a) => a.includes('id=disk'));
    assert.deepEqual(drives, [
      'file=/srv/disk,,0,format=raw,if=none,id=disk0,cache=none,discard=unmap',
      'file=/dev/vg/d1,format=raw,if=none,id=disk1,cache=none,discard=unmap',
    ]);
    assert.deepEqual(
      args.filter((a) => a.startsWith('virtio-blk-pci,drive=disk')),
      ['virtio-blk-pci,drive=disk0,serial=snf-disk0', 'virtio-blk-pci,drive=disk1,serial=snf-disk1'],
    );
  });

  it('takes the config media as inherited descriptors (they have no name), read-only', () => {
    const text = qemuArguments({ ...base, media: { floppyFd: 3, personalityDiskFd: 4 } }).join(' ');
    assert.match(
      text,
      /-add-fd fd=3,set=1,opaque=config-floppy -drive file=\/dev\/fdset\/1,if=floppy,index=0,format=raw,readonly=on/,
    );
    assert.match(
      text,
      /-add-fd fd=4,set=2,opaque=personality-disk -drive file=\/dev\/fdset\/2,format=raw,if=none,id=personality,readonly=on/,
    );
    assert.doesNotMatch(qemuArguments(base).join(' '), /personality/);
  });

  it('has three serial ports, a fourth (pty) only in debug mode', () => {
    assert.equal(qemuArguments(base).filter((a) => a.startsWith('chardev:')).length, 3);
    assert.equal(
      qemuArguments({ ...base, debug: true, serial: { ...base.serial, debug: 'pty' } }).filter((a) =>
        a.startsWith('chardev:'),
      ).length,
      4,
    );
    assert.match(kernelCommandLine({ helper, debug: true }), /snf_image_activate_helper snf_image_debug_helper/);
    assert.ok(qemuArguments({ ...base, accel: 'kvm' }).includes('host'));
  });

  it('boots the PVH vmlinux under TCG when the helper has one, the bzImage otherwise and under KVM', () => {
    const kernel = (input: QemuCommandInput) => {
      const args = qemuArguments(input);
      return args[args.indexOf('-kernel') + 1];
    };
    const withPvh = { ...base, helper: { ...helper, pvhKernel: '/h/kernel-pvh' } };
    assert.equal(kernel(withPvh), '/h/kernel-pvh');
    assert.equal(kernel({ ...withPvh, accel: 'kvm' }), '/h/kernel');
    assert.equal(kernel(base), '/h/kernel');
  });
});

describe('helper monitor protocol', () => {
  it('round-trips events and maps them to schema-valid monitor messages', () => {
    const events = [
      { kind: 'task-start', task: 'FixPartitionTable' },
      { kind: 'task-end', task: 'FixPartitionTable' },
      { kind: 'warning', message: 'No swap partition defined' },
      { kind: 'error', message: 'Unable to read partition table.\nsecond line' },
    ] as const;
    for (const event of events) {
      const line = formatEvent(event);
      assert.ok(!line.includes('\n'));
      const back = parseEvent(line);
      assert.equal(back?.kind, event.kind);
      assert.deepEqual(validateJson('monitor-message', toMonitorMessage(back!), 'm'), []);
    }
    assert.equal(parseEvent('garbage'), undefined);
    assert.equal(formatEvent({ kind: 'warning', message: 'x'.repeat(2000) }).length <= 512, true);
  });
});

describe('config document', () => {
  it('carries the deployment and validates on the helper side', () => {
    const env = parseGanetiEnv(CREATE_ENV, 'create');
    const { params } = parseOsParams(
      wrapSecrets(
        new Map([
          ['img_id', 'x'],
          ['img_format', 'diskdump'],
          ['img_passwd', 'pw-12345'],
          ['img_personality', JSON.stringify([{ path: '/etc/motd', contents: 'aGk=' }])],
        ]),
      ),
      { imageDir: '/i', requireImage: true },
    );
    const doc = buildConfigDocument({
      operation: 'create',
      instance: env.instance!,
      params,
      properties: { OSFAMILY: 'linux' },
      settings: loadConfig({ configFile: '/dev/null' }).settings,
      monitor: { send() {}, close: async () => {} },
    });
    const back = parseConfigDocument(JSON.stringify(doc));
    assert.equal(back.hostname, 'inst1.gnt.test');
    assert.equal(back.secrets.password, 'pw-12345');
    assert.deepEqual(back.disks, [{ index: 0, serial: 'snf-disk0' }]);
    assert.equal(back.nics[0]?.mac, 'aa:00:00:6b:74:80');
    assert.equal(back.personality.length, 1);
    assert.throws(() => parseConfigDocument(JSON.stringify({ ...doc, version: 99 })), /run snf-image-update-helper/);
    assert.throws(() => parseConfigDocument(JSON.stringify({ ...doc, hostname: 5 })), /hostname/);
  });
});

describe('config floppy', () => {
  const doc = () => {
    const env = parseGanetiEnv(CREATE_ENV, 'create');
    const { params } = parseOsParams(
      wrapSecrets(
        new Map([
          ['img_id', 'x'],
          ['img_format', 'diskdump'],
          ['img_passwd', 'pw-12345'],
        ]),
      ),
      { imageDir: '/i', requireImage: true },
    );
    return buildConfigDocument({
      operation: 'create',
      instance: env.instance!,
      params,
      properties: { OSFAMILY: 'linux' },
      settings: loadConfig({ configFile: '/dev/null' }).settings,
      monitor: { send() {}, close: async () => {} },
    });
  };

  it('is a 1.44 MB, 0600 tar archive whose config.json the helper reads back exactly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-floppy-'));
    try {
      const media = await buildConfigMedia(doc(), dir);
      assert.equal(media.personalityDiskFd, undefined);
      const st = fstatSync(media.floppyFd);
      assert.deepEqual([st.size, st.mode & 0o777, st.nlink], [FLOPPY_BYTES, 0o600, 0], 'a 0600 file without a name');
      assert.deepEqual(readdirSync(dir), []);
      assert.throws(() => writeSync(media.floppyFd, 'x'), /EBADF/, 'read-only');
      assert.deepEqual(
        parseConfigDocument(await readConfigFloppy(`/proc/self/fd/${media.floppyFd}`)),
        parseConfigDocument(JSON.stringify(doc())),
      );
      closeConfigMedia(media);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a personality too large for the floppy goes on its own disk; the rest still reads back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-floppy-'));
    try {
      const big = {
        ...doc(),
        personality: [{ path: '/big', contents: Buffer.alloc(1_500_000, 7).toString('base64') }],
      };
      const media = await buildConfigMedia(big, dir);
      assert.ok(media.personalityDiskFd !== undefined);
      assert.equal(fstatSync(media.personalityDiskFd).nlink, 0);
      assert.deepEqual(readdirSync(dir), []);
      const back = parseConfigDocument(await readConfigFloppy(`/proc/self/fd/${media.floppyFd}`));
      assert.deepEqual([back.personality, back.personalityDisk?.serial], [[], 'snf-personality']);
      closeConfigMedia(media);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a device without the archive is refused with one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snf-floppy-'));
    try {
      writeFileSync(join(dir, 'zeros'), Buffer.alloc(FLOPPY_BYTES));
      await assert.rejects(readConfigFloppy(join(dir, 'zeros')), /holds no config\.json/);
      writeFileSync(join(dir, 'junk'), Buffer.alloc(FLOPPY_BYTES, 0x41));
      await assert.rejects(readConfigFloppy(join(dir, 'junk')), /not a config floppy/);
      await assert.rejects(readConfigFloppy(join(dir, 'missing')), /cannot read/);
      assert.equal((await configFloppyImage(doc())).length, FLOPPY_BYTES);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
