/**
 * SSH host keys for the guest, generated on the host while the image is being written
 * (key generation inside the helper is slow under software emulation). The helper puts
 * them in place of the image's keys; any type it is not given it generates itself.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { log } from '../log/logger.ts';

const HOST_KEY_TYPES = ['rsa', 'ecdsa', 'ed25519'] as const;
type HostKeyType = (typeof HOST_KEY_TYPES)[number];
export type HostKeys = Partial<Record<HostKeyType, { privateKey: string; publicKey: string }>>;

export async function generateHostKeys(): Promise<HostKeys> {
  const dir = await mkdtemp(join(tmpdir(), 'snf-image-hostkeys-'));
  try {
    const keys: HostKeys = {};
    await Promise.all(
      HOST_KEY_TYPES.map(async (type) => {
        const { execa } = await import('execa');
        const file = join(dir, type);
        await execa('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `root@${type}`, '-f', file], {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
          extendEnv: false,
        });
        keys[type] = { privateKey: await readFile(file, 'utf8'), publicKey: await readFile(`${file}.pub`, 'utf8') };
      }),
    );
    return keys;
  } catch (error) {
    log().warn(
      { err: error instanceof Error ? error.message.split('\n')[0] : String(error) },
      'cannot generate SSH host keys on the host; the helper will',
    );
    return {};
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
