/**
 * The second half of create (and rename): build the config document and media, choose the
 * accelerator, boot the helper VM over the instance disks and turn its outcome into
 * progress messages and a one-line error.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Settings } from '../config/settings.ts';
import type { InstanceEnv } from '../ganeti/env.ts';
import type { OsParams } from '../ganeti/params.ts';
import { log } from '../log/logger.ts';
import * as msg from '../monitor/messages.ts';
import type { MonitorSink } from '../monitor/progress-monitor.ts';
import { registerCleanup, temporaryDirectory, type Cleanup } from '../util/cleanup.ts';
import { UserError } from '../util/errors.ts';
import { CONFIG_DOCUMENT_VERSION, type ConfigDocument } from './config-document.ts';
import { buildConfigMedia, closeConfigMedia, type ConfigMedia } from './config-media.ts';
import { helperFiles } from './helper-files.ts';
import { allocatePrivateUid } from '../util/private-uid.ts';
import { launchHelper, type HelperOutcome } from './launch.ts';
import { diskSerial } from './qemu-command.ts';
import { chooseAccel, qemuVersion, userOptionFor } from './qemu-probe.ts';
import type { HostKeys } from './host-keys.ts';

export interface HelperRequest {
  operation: 'create' | 'rename';
  instance: InstanceEnv;
  params: OsParams | undefined;
  properties: Readonly<Record<string, string>>;
  settings: Settings;
  monitor: MonitorSink;
  oldHostname?: string | undefined;
  hostKeys?: HostKeys | undefined;
  /** os_answer_file's content, fetched by create. */
  answerFile?: Buffer | undefined;
  onStart?: (pid: number, args: readonly string[]) => void;
}

export function buildConfigDocument(req: HelperRequest): ConfigDocument {
  const p = req.params;
  const s = req.settings;
  return {
    version: CONFIG_DOCUMENT_VERSION,
    operation: req.operation,
    hostname: req.instance.name,
    ...(p?.imgFormat ? { imageFormat: p.imgFormat } : {}),
    ...(req.oldHostname ? { oldHostname: req.oldHostname } : {}),
    properties: { ...req.properties },
    disks: req.instance.disks.map((d) => ({ index: d.index, serial: diskSerial(d.index) })),
    nics: req.instance.nics.map((n) => ({
      index: n.index,
      mac: n.mac,
      ...(n.ip ? { ip: n.ip } : {}),
      ...(n.uuid ? { uuid: n.uuid } : {}),
      ...(n.name ? { name: n.name } : {}),
      ...(n.mode ? { mode: n.mode } : {}),
      ...(n.link ? { link: n.link } : {}),
      ...(n.bridge ? { bridge: n.bridge } : {}),
      ...(n.frontendType ? { frontendType: n.frontendType } : {}),
      network: {
        tags: n.network.tags,
        ...(n.network.name ? { name: n.network.name } : {}),
        ...(n.network.uuid ? { uuid: n.network.uuid } : {}),
        ...(n.network.subnet ? { subnet: n.network.subnet } : {}),
        ...(n.network.gateway ? { gateway: n.network.gateway } : {}),
        ...(n.network.subnet6 ? { subnet6: n.network.subnet6 } : {}),
        ...(n.network.gateway6 ? { gateway6: n.network.gateway6 } : {}),
        ...(n.network.macPrefix ? { macPrefix: n.network.macPrefix } : {}),
      },
    })),
    network: {
      dhcpTags: s.DHCP_TAGS,
      statefulDhcpv6Tags: s.STATEFUL_DHCPV6_TAGS,
      statelessDhcpv6Tags: s.STATELESS_DHCPV6_TAGS,
      defaultNicConfig: s.DEFAULT_NIC_CONFIG,
    },
    secrets: {
      ...(p?.imgPasswd ? { password: p.imgPasswd.reveal() } : {}),
      ...(p?.imgPasswdHash ? { passwordHash: p.imgPasswdHash.reveal() } : {}),
      ...(p?.authKeys ? { authKeys: p.authKeys.reveal() } : {}),
      ...(p?.cloudUserdata ? { cloudUserdata: p.cloudUserdata.reveal() } : {}),
      ...(p?.osProductKey ? { productKey: p.osProductKey.reveal() } : {}),
    },
    personality: (p?.imgPersonality ?? []).map((f) => ({ ...f })),
    hostKeys: { ...(req.hostKeys ?? {}) },
    windowsTimezone: s.WINDOWS_TIMEZONE,
    ...(req.answerFile ? { answerFile: req.answerFile.toString('base64') } : {}),
    cloudInitDebug: s.CLOUD_INIT_DEBUG,
    debug: s.HELPER_DEBUG,
  };
}

export async function runHelper(req: HelperRequest): Promise<HelperOutcome> {
  const s = req.settings;
  const files = helperFiles(s.HELPER_DIR);
  const disks = req.instance.disks.map((d) => {
    if (!d.path) throw new UserError(`DISK_${d.index}_PATH: userspace-only disks are not supported by the helper VM`);
    return { path: d.path, serial: diskSerial(d.index) };
  });
  const hostStarted = Date.now();
  const workDir = await temporaryDirectory(join(tmpdir(), 'snf-image-helper-'), 'helper work directory');
  let media: ConfigMedia | undefined;
  let releaseUid: Cleanup | undefined;
  try {
    media = await buildConfigMedia(buildConfigDocument(req), workDir.path);
    const version = await qemuVersion(s.QEMU);
    const accel = await chooseAccel(
      s.HELPER_ACCEL,
      s.QEMU,
      version,
      files.kernel,
      join(s.HELPER_DIR, 'accel-probe.json'),
    );
    const helperUid = s.HELPER_UIDS ? await allocatePrivateUid(s.HELPER_UIDS) : undefined;
    if (helperUid) releaseUid = registerCleanup('helper uid lock', () => helperUid.release());
    const user = helperUid?.user ?? s.HELPER_USER;
    log().info(
      {
        accel,
        qemu: version.text,
        memoryMiB: s.HELPER_MEMORY,
        user,
        hostSetupSeconds: (Date.now() - hostStarted) / 1000,
      },
      'starting the helper VM',
    );
    req.monitor.send(msg.info('Starting customization VM...'));
    const outcome = await launchHelper({
      qemu: s.QEMU,
      workDir: workDir.path,
      media,
      softTimeoutSeconds: s.HELPER_SOFT_TIMEOUT,
      hardTimeoutSeconds: s.HELPER_HARD_TIMEOUT,
      monitor: req.monitor,
      ...(req.onStart ? { onStart: req.onStart } : {}),
      command: {
        accel,
        memoryMiB: s.HELPER_MEMORY,
        user,
        userOption: userOptionFor(version),
        helper: files,
        disks,
        debug: s.HELPER_DEBUG,
      },
    });
    for (const t of outcome.tasks) log().info({ task: t.task, seconds: t.seconds }, 'helper task timing');
    if (outcome.ok) {
      req.monitor.send(msg.info('Customization VM exited normally.', 'Customization status is: SUCCESS'));
      log().info({ seconds: outcome.seconds }, 'helper VM finished: SUCCESS');
    } else {
      log().error(
        { seconds: outcome.seconds, reason: outcome.reason },
        outcome.reason === 'timeout'
          ? 'Customization VM was terminated. Did not finish on time.'
          : 'Image customization failed.',
      );
    }
    return outcome;
  } finally {
    if (media) closeConfigMedia(media);
    await releaseUid?.run();
    await workDir.remove();
  }
}
