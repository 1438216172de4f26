/**
 * Which fstab entries MountImage mounts: every local filesystem the helper can mount, as
 * upstream's mount_all (snf-image-helper/common.sh.in) does, not only /boot, /usr, /var, ...
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { entriesToMount, parseFstab } from '../../helper/tasks/mount.ts';

describe('MountImage: the fstab entries it mounts (upstream mount_all)', () => {
  it('every local filesystem, parents first; not the root, swap, pseudo or network filesystems, noauto entries', () => {
    const fstab = parseFstab(
      [
        'UUID=r / ext4 defaults 0 1',
        'UUID=d /srv/data xfs defaults 0 2',
        'UUID=s /srv ext4 defaults 0 2',
        'LABEL=b /boot ext2 defaults 0 2',
        'UUID=e /boot/efi vfat umask=0077 0 1',
        'UUID=o /opt/app btrfs subvol=app 0 0',
        'UUID=w none swap sw 0 0',
        'proc /proc proc defaults 0 0',
        'tmpfs /tmp tmpfs defaults 0 0',
        'UUID=x /run/media ext4 defaults 0 0',
        'server:/export /mnt/nfs nfs defaults 0 0',
        'UUID=n /mnt/usb ext4 noauto 0 0',
        'UUID=a /data auto defaults,nofail 0 0',
        'UUID=t /mnt/win ntfs-3g defaults 0 0',
      ].join('\n'),
    );
    assert.deepEqual(
      entriesToMount(fstab).map((e) => e.mountPoint),
      ['/srv', '/boot', '/data', '/opt/app', '/srv/data', '/boot/efi'],
    );
  });
});
