/**
 * `snf-image deploy`: the create path outside Ganeti. OS parameters are flags; secret ones
 * are read from files or stdin, never from the command line.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadScriptContext } from '../ganeti/context.ts';
import { runCreate } from '../ganeti/create.ts';
import { TerminalProgress } from '../monitor/progress-bar.ts';
import { UserError } from '../util/errors.ts';
import { startTerminalView } from './terminal-mode.ts';

interface DeployFlags {
  disk: string;
  imgId: string;
  imgFormat: string;
  helper: boolean;
  hostname: string;
  variant?: string;
  imgProperties?: string;
  instProperties?: string;
  imgPersonality?: string;
  configUrl?: string;
  osAnswerFile?: string;
  passwdFile?: string;
  passwdStdin?: boolean;
  passwdHashFile?: string;
  authKeysFile?: string;
  cloudUserdataFile?: string;
  osProductKeyFile?: string;
  progress: boolean;
  verbose?: boolean;
}

function readSecretFile(path: string, flag: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new UserError(`${flag}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function deployEnvironment(flags: DeployFlags, base: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {
    PATH: base.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    OS_API_VERSION: '20',
    OS_NAME: 'snf-image',
    OS_VARIANT: flags.variant ?? '',
    INSTANCE_NAME: flags.hostname,
    HYPERVISOR: 'kvm',
    DISK_COUNT: '1',
    DISK_0_PATH: resolve(flags.disk),
    DISK_0_ACCESS: 'rw',
    NIC_COUNT: '0',
    OSP_IMG_ID: flags.imgId,
    OSP_IMG_FORMAT: flags.imgFormat,
  };
  if (base.SNF_IMAGE_CONFIG) env.SNF_IMAGE_CONFIG = base.SNF_IMAGE_CONFIG;
  const plain: Array<[string | undefined, string]> = [
    [flags.imgProperties, 'OSP_IMG_PROPERTIES'],
    [flags.instProperties, 'OSP_INST_PROPERTIES'],
    [flags.imgPersonality, 'OSP_IMG_PERSONALITY'],
    [flags.configUrl, 'OSP_CONFIG_URL'],
    [flags.osAnswerFile, 'OSP_OS_ANSWER_FILE'],
  ];
  for (const [value, name] of plain) if (value !== undefined) env[name] = value;
  const secrets: Array<[string | undefined, string, string]> = [
    [flags.passwdFile ?? (flags.passwdStdin ? '-' : undefined), 'OSP_IMG_PASSWD', '--passwd-file'],
    [flags.passwdHashFile, 'OSP_IMG_PASSWD_HASH', '--passwd-hash-file'],
    [flags.authKeysFile, 'OSP_AUTH_KEYS', '--auth-keys-file'],
    [flags.cloudUserdataFile, 'OSP_CLOUD_USERDATA', '--cloud-userdata-file'],
    [flags.osProductKeyFile, 'OSP_OS_PRODUCT_KEY', '--os-product-key-file'],
  ];
  for (const [file, name, flag] of secrets) if (file !== undefined) env[name] = readSecretFile(file, flag);
  return env;
}

export function addDeployCommand(program: Command): void {
  program
    .command('deploy')
    .description('write an image to a disk and customize it, outside Ganeti (same code path as create)')
    .requiredOption('--disk <path>', 'target block device or file')
    .requiredOption('--img-id <id>', 'image: local://NAME, NAME, http(s)://URL, ftp(s)://URL or null')
    .requiredOption('--img-format <format>', 'diskdump, extdump, ntfsdump, qcow2, vmdk, vdi or vhdx')
    .option('--no-helper', 'write the image only, no customization')
    .option('--hostname <name>', 'instance name (the guest hostname)', 'snf-image-deploy')
    .option('--variant <name>', 'read this variant file too')
    .option('--img-properties <json>', 'image properties JSON')
    .option('--inst-properties <json>', 'instance properties JSON')
    .option('--img-personality <json>', 'files to inject (JSON)')
    .option('--config-url <url>', 'URL of a JSON document overriding the parameters')
    .option('--os-answer-file <url>', 'Windows answer file URL')
    .option('--passwd-file <file>', 'file holding img_passwd ("-": stdin)')
    .option('--passwd-stdin', 'read img_passwd from stdin')
    .option('--passwd-hash-file <file>', 'file holding img_passwd_hash')
    .option('--auth-keys-file <file>', 'authorized_keys file to inject')
    .option('--cloud-userdata-file <file>', 'file holding base64 cloud-init user-data')
    .option('--os-product-key-file <file>', 'file holding the Windows product key')
    .option('--verbose', 'the full log on the terminal too (as Ganeti gets it), with the progress bar')
    .option('--no-progress', 'the full log without progress bar, even on a terminal')
    .action(async (flags: DeployFlags) => {
      const env = deployEnvironment(flags, process.env);
      const ctx = loadScriptContext('create', env);
      const view = flags.progress ? startTerminalView(ctx, Boolean(flags.verbose)) : undefined;
      await runCreate(ctx, {
        customize: flags.helper,
        view,
        terminal: flags.progress && !view ? TerminalProgress.forStderr() : undefined,
      });
    });
}
