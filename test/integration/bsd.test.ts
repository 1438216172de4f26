/**
 * BSD guests end to end: `create` with the real helper VM on disks made by
 * test/support/bsd-guest.ts (makefs FFS/UFS, disklabels written by the test), OSFAMILY and
 * ROOT_PARTITION auto-detected. What the stock Debian helper can do is checked on the
 * deployed disk (slice and disklabel grown, GPT grown, filesystem intact); what it cannot
 * (writing UFS: the kernel has no CONFIG_UFS_FS_WRITE) must stop create with one clear line.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { diskPartitions as partitions } from '../support/partition-table.ts';
import { runScript } from '../support/binary.ts';
import { ensureHelper, helperSkipReason } from '../support/helper-image.ts';
import { makeNode, type NodeFixture } from '../support/node-fixture.ts';
import { bsdToolsSkipReason, LAYOUTS, makeBsdGuest, OPENBSD_DUID, readSector, type BsdGuestLayout } from '../support/bsd-guest.ts';
import { CREATE_ENV } from '../fixtures/ganeti-env.ts';
import { parseDisklabel, usedPartitions } from '../../helper/bsd/disklabel.ts';
import { UFS_WRITE_UNAVAILABLE, ufsTypeOf } from '../../helper/bsd/ufs.ts';

const PASSWORD = 'Bsd-Secret-pw-4411';
const DISK_MIB = 64;
const DISK_SECTORS = DISK_MIB * 2048;
const skip = helperSkipReason() || bsdToolsSkipReason();
let helperDir = '';

interface Deployed {
  code: number | null;
  stderr: string;
  disk: string;
}

async function deploy(node: NodeFixture, layout: BsdGuestLayout, env: Record<string, string> = {}): Promise<Deployed> {
  makeBsdGuest(join(node.imageDir, 'bsd.img'), layout);
  const disk = join(node.root, 'disk0');
  execFileSync('truncate', ['-s', `${DISK_MIB}M`, disk]);
  const r = await runScript('create', {
    env: { ...CREATE_ENV, OSP_IMG_ID: 'bsd.img', OSP_IMG_FORMAT: 'diskdump', OSP_IMG_PASSWD: PASSWORD, DISK_0_PATH: disk, INSTANCE_NAME: 'bsd1.example.org', SNF_IMAGE_CONFIG: node.configFile, ...env },
  });
  return { code: r.code, stderr: r.stderr, disk };
}


const SKIP_MOUNTED = { OSP_IMG_PROPERTIES: '{"EXCLUDE_MOUNTED_TASKS": "yes"}' };

describe('BSD guests (real helper VM)', { skip, timeout: 2_400_000 }, () => {
  before(() => {
    helperDir = ensureHelper();
  });
  const node = () => makeNode(`HELPER_DIR=${helperDir}\nHELPER_SOFT_TIMEOUT=900\n`);

  for (const family of ['openbsd', 'netbsd'] as const) {
    it(`${family} (MBR slice + disklabel): detected, slice and last label partition grown to the end of the disk, FFS untouched`, async () => {
      const layout = LAYOUTS[family];
      const r = await deploy(node(), layout, SKIP_MOUNTED);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`OSFAMILY=${family} ROOT_PARTITION=1`));
      assert.match(r.stderr, /growing UFS is not available in the helper/);
      assert.ok(!r.stderr.includes(PASSWORD), 'no secret in the log');
      const [slice] = partitions(r.disk);
      assert.deepEqual([slice?.start, slice?.size], [layout.rootStart, DISK_SECTORS - layout.rootStart], 'slice grown to the last sector');
      const label = parseDisklabel(readSector(r.disk, layout.rootStart + 1), family);
      const used = usedPartitions(label, layout.rootStart);
      assert.deepEqual(used.map((p) => [p.letter, p.start, p.size]), [
        ['a', layout.rootStart, layout.rootSize - 8192],
        ['b', layout.rootStart + layout.rootSize - 8192, DISK_SECTORS - (layout.rootStart + layout.rootSize - 8192)],
      ]);
      assert.equal(label.secperunit, DISK_SECTORS);
      assert.equal(label.duid, family === 'openbsd' ? OPENBSD_DUID : '');
      assert.equal(ufsTypeOf(readSector(r.disk, layout.rootStart, 136)), '44bsd', 'the FFS superblock is intact');
    });
  }

  it('freebsd (GPT freebsd-ufs, UFS1, a /var UFS partition first): detected by GUID and /etc/fstab, last GPT partition grown, UFS untouched', async () => {
    const layout = { ...LAYOUTS.freebsd, varFirst: true };
    const r = await deploy(node(), layout, SKIP_MOUNTED);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /OSFAMILY=freebsd ROOT_PARTITION=3/, 'neither freebsd-boot (1) nor the /var UFS without /etc/fstab (2) is the root');
    const parts = partitions(r.disk);
    assert.equal(parts.length, 4);
    assert.equal(parts[3]!.start + parts[3]!.size, DISK_SECTORS - 33, 'the last partition reaches the backup GPT');
    assert.equal(ufsTypeOf(readSector(r.disk, layout.rootStart, 136)), '44bsd');
  });

  for (const family of ['freebsd', 'openbsd', 'netbsd'] as const) {
    it(`${family} with the mounted tasks: create stops with one line saying UFS cannot be written`, async () => {
      const r = await deploy(node(), LAYOUTS[family]);
      assert.notEqual(r.code, 0);
      assert.ok(r.stderr.includes(UFS_WRITE_UNAVAILABLE), r.stderr.split('\n').slice(-8).join('\n'));
      assert.ok(!r.stderr.includes(PASSWORD), 'no secret in the log');
    });
  }

  it('a hostile disklabel (root partition past the end of its slice) is refused with one line', async () => {
    const r = await deploy(node(), { ...LAYOUTS.netbsd, labelRootSize: 50_000 }, SKIP_MOUNTED);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /netbsd disklabel: disklabel partition a \(sectors 63\+50000\) lies outside its slice/);
  });
});
