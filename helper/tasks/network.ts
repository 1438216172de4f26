/**
 * ConfigureNetwork: the instance's NICs (NIC_<i>_* and the *_TAGS / DEFAULT_NIC_CONFIG
 * settings, see network/model.ts) configured in the mounted guest for whichever network
 * system it uses (network/detect.ts), every NIC matched by its MAC address
 * (network/renderers.ts, network/apply.ts). No NICs: nothing to do. No known network
 * system in the image: a warning, not a failure.
 *
 * Cloud-init mode (CLOUD_INIT) as upstream's 50ConfigureNetwork: a network system this task
 * knows is configured here as in files mode (the image's own configuration set aside, and
 * cloud-init told to leave the network alone); only for one it does not know does the seed
 * get a network-config for cloud-init to render.
 */
import { isYes, osFamily, type HelperContext } from '../context.ts';
import { isBsdFamily } from '../bsd/partition-types.ts';
import { configureBsdNetwork } from '../os/bsd.ts';
import { TaskError } from '../exec.ts';
import { GuestFs } from '../guest-files.ts';
import { seedNetworkConfig } from '../cloud-init/seed.ts';
import { applyNetwork, CLOUD_INIT_PATH } from '../network/apply.ts';
import { detectNetworkSystem } from '../network/detect.ts';
import { describeNic, networkModel, type NicModel } from '../network/model.ts';

export async function configureNetwork(ctx: HelperContext): Promise<void> {
  if (isBsdFamily(osFamily(ctx))) return configureBsdNetwork(ctx, new GuestFs(ctx.target));
  if (ctx.config.nics.length === 0) {
    ctx.info('the instance has no NICs: no network to configure');
    return;
  }
  let nics: NicModel[];
  try {
    nics = networkModel(ctx.config);
  } catch (e) {
    throw new TaskError(`ConfigureNetwork: ${(e as Error).message}`);
  }
  const fs = new GuestFs(ctx.target);
  const detection = detectNetworkSystem(fs, ctx.properties);
  if (!detection.system && isYes(ctx.properties.CLOUD_INIT)) {
    const file = seedNetworkConfig(nics);
    fs.write(file.path, file.content, { mode: file.mode, uid: 0, gid: 0 });
    // A network-disabling file from an earlier deployment would make cloud-init ignore it.
    if (fs.exists(CLOUD_INIT_PATH)) fs.remove(CLOUD_INIT_PATH);
    ctx.warn(
      `Don't know how to configure the network of this image (${detection.why}): letting cloud-init do it (${file.path})`,
    );
    return;
  }
  if (!detection.system) {
    ctx.warn(
      `Don't know how to configure the network of this image (${detection.why}): its network configuration is left as it is`,
    );
    return;
  }
  ctx.info(`network configuration system: ${detection.system} (${detection.why})`);
  for (const nic of nics) ctx.info(`NIC ${nic.index}: ${describeNic(nic)}`);
  const result = applyNetwork(fs, detection.system, nics);
  for (const warning of result.warnings) ctx.warn(warning);
  if (result.written.length > 0) ctx.info(`written: ${result.written.join(', ')}`);
  if (result.backups.length > 0) ctx.info(`backed up: ${result.backups.join(', ')}`);
  if (result.disabled.length > 0) ctx.info(`disabled: ${result.disabled.join(', ')}`);
}
