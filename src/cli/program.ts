/**
 * snf-image command line (loaded by main.ts). Called by the name of a Ganeti OS script
 * (create, import, export, rename, verify: the OS directory's scripts link to this binary)
 * it behaves as that script; otherwise it takes a subcommand.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { Command, CommanderError } from 'commander';
import { loadConfig, renderEffectiveConfig } from '../config/load.ts';
import { configFileFrom } from '../ganeti/context.ts';
import { GANETI_SCRIPTS, installOsDefinition, type GanetiScript } from '../ganeti/os-definition.ts';
import { runningAsSea } from '../util/assets.ts';
import { installCleanupHandlers, runCleanups } from '../util/cleanup.ts';
import { describeError, ValidationError } from '../util/errors.ts';
import { runGanetiScript } from './ganeti-script.ts';
import { addDeployCommand } from './deploy-command.ts';
import { VERSION } from '../version.ts';

/** Names the binary answers to through links, and the subcommand each one means. */
const LINK_NAMES: Readonly<Record<string, string[]>> = {
  'snf-image-update-helper': ['update-helper'],
};

function isGanetiScript(name: string): name is GanetiScript {
  return (GANETI_SCRIPTS as readonly string[]).includes(name);
}

function buildProgram(): Command {
  const program = new Command('snf-image')
    .description('Ganeti OS provider: deploy VM images and customize them in an isolated helper VM')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError();

  for (const script of GANETI_SCRIPTS) {
    program
      .command(script)
      .description(`run the Ganeti OS ${script} script (environment as Ganeti sets it)`)
      .argument('[args...]')
      .allowUnknownOption()
      .helpOption(false)
      .action(async (args: string[]) => {
        process.exitCode = await runGanetiScript(script, args, process.env);
      });
  }

  program
    .command('install-os')
    .description('write a Ganeti OS definition (API 20) whose scripts link to this binary')
    .argument('<dir>', 'OS directory, e.g. /srv/ganeti/os/snf-image')
    .option('--binary <path>', 'the snf-image binary the scripts link to (default: this one)')
    .option('--variants-dir <dir>', 'where variant files live (default: VARIANTS_DIR)')
    .action((dir: string, opts: { binary?: string; variantsDir?: string }) => {
      const binary = opts.binary ?? (runningAsSea() ? process.execPath : undefined);
      if (!binary) throw new Error('--binary: required when not running the built single executable');
      const configFile = configFileFrom(process.env);
      // A configuration file that does not exist yet is what install-os writes: read the defaults.
      const config = loadConfig({ configFile: configFile && !existsSync(configFile) ? '/dev/null' : configFile });
      for (const line of installOsDefinition({
        dir,
        binary,
        variantsDir: opts.variantsDir ?? config.settings.VARIANTS_DIR,
        ...(configFile ? { configFile } : {}),
      })) {
        process.stdout.write(`${line}\n`);
      }
    });

  addDeployCommand(program);

  program
    .command('update-helper')
    .description('build the helper VM from Debian packages into HELPER_DIR (also installed as snf-image-update-helper)')
    .option('--check', 'only say whether the installed helper matches this binary (exit 1 if not)')
    .option('--force', 'rebuild even if the helper is up to date')
    .option('--binary <path>', 'the snf-image binary to put into the helper (default: this one)')
    .option('--mirror <url>', 'Debian mirror (default: the one apt uses)')
    .option(
      '--refresh',
      'bootstrap again from the mirror instead of the cached packages (security updates, a new kernel)',
    )
    .option('--no-ufs-write', "keep Debian's read-only ufs module (BSD images then cannot be customized)")
    .action(
      async (opts: {
        check?: boolean;
        force?: boolean;
        binary?: string;
        mirror?: string;
        refresh?: boolean;
        ufsWrite: boolean;
      }) => {
        const binary = opts.binary ?? (runningAsSea() ? process.execPath : undefined);
        if (!binary) throw new Error('--binary: required when not running the built single executable');
        const { helperState, updateHelper } = await import('../helper-vm/update-helper.ts');
        const { settings } = loadConfig({ configFile: configFileFrom(process.env) });
        if (opts.check) {
          const state = await helperState(settings.HELPER_DIR, binary);
          process.stdout.write(
            state.state === 'current'
              ? `up to date (built ${state.buildTime})\n`
              : state.state === 'missing'
                ? `missing: no helper VM in ${settings.HELPER_DIR}\n`
                : `stale: ${state.why}\n`,
          );
          process.exitCode = state.state === 'current' ? 0 : 1;
          return;
        }
        await updateHelper({
          helperDir: settings.HELPER_DIR,
          binary,
          force: Boolean(opts.force || opts.refresh),
          refresh: Boolean(opts.refresh),
          mirror: opts.mirror,
          ufsWrite: opts.ufsWrite,
          out: (line) => process.stdout.write(`${line}\n`),
        });
      },
    );

  program
    .command('helper', { hidden: true })
    .description('PID 1 of the helper VM (refuses to run anywhere else)')
    .action(async () => {
      const { helperMain } = await import('../../helper/main.ts');
      await helperMain();
    });

  program
    .command('doctor')
    .description(
      'check this node: QEMU, KVM, helper VM, helper user, directories, OS definition, configuration, https trust',
    )
    .option('--json', 'print the results as JSON')
    .option('--os-name <name>', 'the Ganeti OS name (its directory in the OS search path)', 'snf-image')
    .option('--check <id...>', 'run only these checks')
    .action(async (opts: { json?: boolean; osName: string; check?: string[] }) => {
      const { defaultDoctorEnvironment, doctorExitCode, renderReport, runChecks } = await import('../doctor/checks.ts');
      const env = defaultDoctorEnvironment(
        configFileFrom(process.env),
        runningAsSea() ? process.execPath : undefined,
        opts.osName,
      );
      const reports = await runChecks(env, opts.check);
      process.stdout.write(
        opts.json
          ? `${JSON.stringify({ ok: doctorExitCode(reports) === 0, checks: reports }, null, 2)}\n`
          : renderReport(reports),
      );
      process.exitCode = doctorExitCode(reports);
    });

  program
    .command('config')
    .description('print the effective configuration (snf-image.conf, then the variant file)')
    .option('--variant <name>', 'include this variant file', 'default')
    .action((opts: { variant: string }) => {
      const config = loadConfig({ configFile: configFileFrom(process.env), variant: opts.variant });
      process.stdout.write(renderEffectiveConfig(config));
    });

  return program;
}

/**
 * Runs the command; whatever it leaves registered for cleanup (it should leave nothing) is
 * cleaned up before its exit code is returned. Signals and uncaught errors clean up too.
 */
export async function main(argv: readonly string[]): Promise<number> {
  // The helper VM's PID 1 keeps its own signal handling.
  if (argv[2] !== 'helper') installCleanupHandlers();
  try {
    return await runCommand(argv);
  } finally {
    await runCleanups();
  }
}

async function runCommand(argv: readonly string[]): Promise<number> {
  const invokedAs = basename(argv[1] ?? '');
  const rest = argv.slice(2);
  if (isGanetiScript(invokedAs)) return runGanetiScript(invokedAs, rest, process.env);
  const linked = LINK_NAMES[invokedAs];
  const program = buildProgram();
  try {
    await program.parseAsync([...(linked ?? []), ...rest], { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof ValidationError)
      for (const problem of error.problems) process.stderr.write(`snf-image: ${problem}\n`);
    else process.stderr.write(`snf-image: ${describeError(error)}\n`);
    return 1;
  }
}
