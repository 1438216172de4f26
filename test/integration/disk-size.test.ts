/**
 * The size of a block device comes from the opened device, whatever its number: a device
 * with a minor >= 256 (busy nodes have hundreds of LVs and DRBD minors) gets its own size,
 * so the write limit and WIPE_DISK_TAIL cover the whole disk and no previous tenant's data
 * stays readable after the image. Root only (loop devices).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspectDisk } from '../../src/disk/disk-target.ts';
import { binaryMissingReason, notRootReason, runScript } from '../support/binary.ts';
import { makeNode } from '../support/node-fixture.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';

const MiB = 1024 * 1024;
const DISK_BYTES = 24 * MiB;
const skip = notRootReason() || binaryMissingReason();

/** A block device node with major 7 (loop) and a minor >= 256, bound to `file`. */
function highMinorLoop(dir: string, file: string): { node: string; minor: number } {
  for (let minor = 300; minor < 1300; minor += 7) {
    if (existsSync(`/sys/block/loop${minor}/loop/backing_file`)) continue;
    const node = join(dir, `disk-7-${minor}`);
    execFileSync('mknod', [node, 'b', '7', String(minor)]);
    // Opening the node makes the loop driver create the device; losetup binds it.
    if (spawnSync('losetup', [node, file]).status === 0) return { node, minor };
    rmSync(node);
  }
  throw new Error('no free loop minor in 300..1300');
}

describe('block devices with a minor >= 256', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'snf-minor-'));
  const backing = join(dir, 'backing.img');
  let node = '';
  let minor = 0;

  before(() => {
    writeFileSync(backing, Buffer.alloc(DISK_BYTES, 0xa5)); // the previous tenant's data
    ({ node, minor } = highMinorLoop(dir, backing));
  });
  after(() => {
    if (node) spawnSync('losetup', ['-d', node]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('inspectDisk reports the size of the device itself', () => {
    assert.ok(minor >= 256);
    assert.deepEqual(inspectDisk(node, 'DISK_0_PATH'), { path: node, kind: 'block', sizeBytes: DISK_BYTES });
  });

  it('create writes the image and wipes the whole rest of the disk', async () => {
    const fixture = makeNode();
    const image = Buffer.alloc(4 * MiB, 0x5a);
    writeFileSync(join(fixture.imageDir, 'small.img'), image);
    const r = await runScript('create', {
      env: {
        ...CREATE_ENV,
        OSP_IMG_ID: 'small.img',
        OSP_IMG_FORMAT: 'diskdump',
        OSP_IMG_PROPERTIES: JSON.stringify({ EXCLUDE_ALL_TASKS: 'yes' }),
        DISK_0_PATH: node,
        SNF_IMAGE_CONFIG: fixture.configFile,
      },
    });
    assert.equal(r.code, 0, r.stderr);
    const disk = readFileSync(node);
    assert.equal(disk.length, DISK_BYTES);
    assert.ok(disk.subarray(0, image.length).equals(image), 'the image is on the disk');
    const tail = disk.subarray(image.length);
    assert.equal(tail.indexOf(0xa5), -1, 'no byte of the previous tenant is left after the image');
    rmSync(fixture.root, { recursive: true, force: true });
  });
});
