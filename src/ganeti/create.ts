/**
 * `create` (and `snf-image deploy`, which shares this path): validate every input, write
 * the image to disk 0, then customize it in the helper VM.
 */
import { decisionFor, helperNeeded, type HelperVerdict } from '../../helper/plan/decide.ts';
import { inspectDisk } from '../disk/disk-target.ts';
import { deployImage } from '../image/deploy.ts';
import { displayImageId } from '../image/image-id.ts';
import { helperFiles } from '../helper-vm/helper-files.ts';
import { runHelper } from '../helper-vm/run-helper.ts';
import { generateHostKeys } from '../helper-vm/host-keys.ts';
import { log } from '../log/logger.ts';
import * as msg from '../monitor/messages.ts';
import type { ByteProgressDisplay } from '../monitor/progress-bar.ts';
import { createMonitor, ProgramMonitor, type MonitorSink } from '../monitor/progress-monitor.ts';
import { TeeMonitor, type TerminalView } from '../monitor/terminal-view.ts';
import { describeError, UserError, ValidationError } from '../util/errors.ts';
import { tlsTrust } from '../util/tls-trust.ts';
import { flagWarnings } from '../util/flags.ts';
import { fetchAnswerFile } from './answer-file.ts';
import { applyConfigDocument, fetchConfigDocument } from './config-url.ts';
import type { ScriptContext } from './context.ts';
import { parseOsParams, type OsParams } from './params.ts';
import { hostDecisionInput } from './task-plan.ts';

export interface CreateOptions {
  /** false: write the image only (snf-image deploy --no-helper). */
  customize: boolean;
  /** The bar alone (deploy --verbose on a terminal): the full log goes on. */
  terminal?: ByteProgressDisplay | undefined;
  /** The terminal view (a person at a terminal): messages, bar and tasks drawn once each. */
  view?: TerminalView | undefined;
  onHelperStart?: (pid: number, args: readonly string[]) => void;
}

/** Resolves config_url and checks all parameters; nothing touches the disk before this. */
async function resolveCreateParams(ctx: ScriptContext): Promise<OsParams> {
  let raw = ctx.params;
  const configUrl = raw.get('config_url');
  if (typeof configUrl === 'string' && configUrl !== '') {
    const first = parseOsParams(raw, { imageDir: ctx.config.settings.IMAGE_DIR, requireImage: false });
    const urlProblems = first.problems.filter((p) => p.startsWith('config_url:'));
    if (urlProblems.length > 0) throw new ValidationError(urlProblems);
    log().info('fetching config_url document');
    const document = await fetchConfigDocument(configUrl, {
      timeoutSeconds: ctx.config.settings.CONFIG_URL_TIMEOUT,
      maxBytes: ctx.config.settings.CONFIG_URL_MAX_SIZE,
      tls: tlsTrust(ctx.config.settings),
    });
    raw = applyConfigDocument(raw, document);
    log().info({ keys: [...document.keys()] }, 'config_url document applied');
  }
  const { params, problems } = parseOsParams(raw, { imageDir: ctx.config.settings.IMAGE_DIR, requireImage: true });
  if (problems.length > 0) throw new ValidationError(problems);
  return params;
}

/** The view replaces the log's [MONITOR] lines; a PROGRESS_MONITOR program gets the messages all the same. */
function monitorFor(program: string, instanceName: string, view: TerminalView | undefined): MonitorSink {
  if (!view) return createMonitor(program, instanceName);
  return program === '' ? view : new TeeMonitor(new ProgramMonitor(program, instanceName), view);
}

export async function runCreate(ctx: ScriptContext, options: CreateOptions = { customize: true }): Promise<void> {
  const instance = ctx.env.instance;
  if (!instance) throw new UserError('INSTANCE_NAME: missing');
  const params = await resolveCreateParams(ctx);
  const disk0 = instance.disks[0];
  if (!disk0?.path)
    throw new UserError(
      `DISK_0_PATH: userspace-only disks (${disk0?.uri ?? 'no path'}) are not supported; use a disk template with a node path`,
    );
  const disk = inspectDisk(disk0.path, 'DISK_0_PATH');
  const properties = { ...params.imgProperties, ...params.instProperties };
  for (const warning of flagWarnings(properties)) log().warn(warning);
  // The helper's own decision says whether any task would run, and whether DeleteSSHKeys does.
  const plan = hostDecisionInput(params, properties);
  const verdict: HelperVerdict = options.customize
    ? helperNeeded('create', plan)
    : { boot: false, why: 'no customization requested' };
  const skipHelper = !verdict.boot;
  const settings = ctx.config.settings;
  // As upstream: an answer file given by the administrator replaces the image's one.
  const answerFile =
    params.osAnswerFile && !skipHelper
      ? await fetchAnswerFile(params.osAnswerFile, {
          timeoutSeconds: settings.CONFIG_URL_TIMEOUT,
          maxBytes: settings.CONFIG_URL_MAX_SIZE,
          dir: settings.ANSWER_FILE_DIR,
          tls: tlsTrust(settings),
        })
      : undefined;
  if (answerFile) properties.IGNORE_UNATTEND = 'yes';
  // Refuse before writing anything when the helper VM is missing.
  if (!skipHelper) helperFiles(ctx.config.settings.HELPER_DIR);
  const monitor = monitorFor(settings.PROGRESS_MONITOR, instance.name, options.view);
  try {
    log().info(
      {
        instance: instance.name,
        img_id: displayImageId(params.imgId as string),
        img_format: params.imgFormat,
        disk: disk.path,
        diskBytes: disk.sizeBytes,
        reinstall: instance.reinstall,
      },
      'deploying image',
    );
    const hostKeys = skipHelper || !decisionFor('DeleteSSHKeys', plan).run ? undefined : generateHostKeys();
    hostKeys?.catch(() => undefined);
    const result = await deployImage({
      imgId: params.imgId as string,
      imgFormat: params.imgFormat as string,
      properties,
      disk,
      settings: ctx.config.settings,
      monitor,
      terminal: options.view ?? options.terminal,
    });
    log().info(
      { method: result.method, imageBytes: result.imageBytes, diskBytes: result.diskBytes, seconds: result.seconds },
      'image deployed',
    );
    // As upstream's create_mbr (snf-image-host/common.sh.in): a filesystem dump's family and
    // root partition are known; image properties still win.
    if (result.synthesizedPartition) {
      properties.OSFAMILY ??= result.synthesizedPartition.osFamily;
      properties.ROOT_PARTITION ??= String(result.synthesizedPartition.rootPartition);
    }
    if (!verdict.boot) {
      log().info(`the helper VM is not started: ${verdict.why}`);
      monitor.send(msg.info('Image customization skipped (no customization requested).'));
    } else {
      const outcome = await runHelper({
        operation: 'create',
        instance,
        params,
        properties,
        settings: ctx.config.settings,
        monitor,
        hostKeys: await hostKeys,
        answerFile,
        ...(options.onHelperStart ? { onStart: options.onHelperStart } : {}),
      });
      if (!outcome.ok) throw new UserError(outcome.message);
      monitor.send(msg.info('Image customization finished successfully.'));
    }
  } catch (error) {
    monitor.send(
      msg.error(error instanceof UserError ? describeError(error) : 'Internal Error: Image deployment failed.'),
    );
    throw error;
  } finally {
    await monitor.close();
  }
}
