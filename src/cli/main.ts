/**
 * Entry point of the single executable. Modules load lazily: the helper VM's PID 1
 * (`snf-image helper`, under software emulation on some hosts) must not pay for the CLI,
 * logging, HTTP and schema libraries it never uses.
 */
function fail(error: unknown): void {
  process.stderr.write(`snf-image: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}

if (process.argv[2] === 'helper') {
  import('../../helper/main.ts').then((m) => m.helperMain(), fail);
} else {
  import('./program.ts').then(
    async (m) => {
      process.exitCode = await m.main(process.argv);
    },
    fail,
  );
}
