/** The block devices CUSTOM_TASK gets in its sandbox: the instance disks and their partitions, nothing else. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { instanceBlockDevices } from '../../helper/tasks/custom-task.ts';

describe('instanceBlockDevices', () => {
  const sys = mkdtempSync(join(tmpdir(), 'snf-sysblock-'));
  after(() => rmSync(sys, { recursive: true, force: true }));
  const dev = (path: string, numbers: string, partition = false) => {
    mkdirSync(join(sys, path), { recursive: true });
    writeFileSync(join(sys, path, 'dev'), `${numbers}\n`);
    if (partition) writeFileSync(join(sys, path, 'partition'), '1\n');
  };
  dev('vda', '254:0');
  dev('vda/vda1', '254:1', true);
  dev('vda/vda2', '254:2', true);
  dev('vda/holders', '0:0'); // not a partition
  dev('vdb', '254:16');
  dev('vdc', '254:32'); // the helper's own root: not an instance disk

  it('lists each instance disk and its partitions by kernel name with major:minor', () => {
    assert.deepEqual(
      instanceBlockDevices(['/dev/vda', '/dev/vdb'], sys).sort((a, b) => a.name.localeCompare(b.name)),
      [
        { name: 'vda', majorMinor: '254:0' },
        { name: 'vda1', majorMinor: '254:1' },
        { name: 'vda2', majorMinor: '254:2' },
        { name: 'vdb', majorMinor: '254:16' },
      ],
    );
  });
});
