/**
 * InitializeDatasource (cloud-init mode only): writes the NoCloud seed (cloud-init/seed.ts)
 * into the mounted guest instead of the file edits of the tasks the table marks
 * cloudInitExcludable. The password is hashed here; no secret is logged. The network is
 * ConfigureNetwork's, which also runs in cloud-init mode (as upstream's).
 */
import { randomUUID } from 'node:crypto';
import type { HelperContext } from '../context.ts';
import { DATASOURCE_CFG, renderSeed, SEED_DIR } from '../cloud-init/seed.ts';
import { TaskError } from '../exec.ts';
import { GuestFs } from '../guest-files.ts';
import { guestHashMethod, hashPassword } from '../os/linux.ts';
import { parseSwapProperty } from '../swap-plan.ts';

function usersOf(properties: Readonly<Record<string, string>>): string[] {
  const list = (properties.USERS ?? '').split(/\s+/).filter(Boolean);
  return list.length > 0 ? list : ['root'];
}

export async function initializeDatasource(ctx: HelperContext): Promise<void> {
  const fs = new GuestFs(ctx.target);
  if (!fs.isDirectory('/etc/cloud'))
    throw new TaskError('CLOUD_INIT is set, but the image has no /etc/cloud: is cloud-init installed?');
  const secrets = ctx.config.secrets;
  const method = ctx.properties.PASSWD_HASHING_METHOD ?? guestHashMethod(fs);
  const passwordHash =
    secrets.passwordHash ?? (secrets.password !== undefined ? await hashPassword(secrets.password, method) : undefined);
  const swap = parseSwapProperty(ctx.properties.SWAP);
  const files = renderSeed({
    instanceId: `snf-image-${randomUUID()}`,
    hostname: ctx.config.hostname,
    users: usersOf(ctx.properties),
    ...(passwordHash !== undefined ? { passwordHash } : {}),
    ...(secrets.authKeys !== undefined ? { authKeys: secrets.authKeys } : {}),
    ...(secrets.cloudUserdata !== undefined ? { userData: Buffer.from(secrets.cloudUserdata, 'base64') } : {}),
    ...(swap?.kind === 'partition' ? { swapMiB: swap.mib } : {}),
    debug: ctx.config.cloudInitDebug,
  });
  for (const file of files) fs.write(file.path, file.content, { mode: file.mode, uid: 0, gid: 0 });
  ctx.info(
    `cloud-init NoCloud seed written to ${SEED_DIR} (${files.map((f) => f.path.split('/').pop()).join(', ')}); datasource in ${DATASOURCE_CFG}`,
  );
}
