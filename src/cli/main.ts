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
  // An operation that never completes (a stream nobody ends) would let the event loop run
  // dry and Node exit 0 as if the command had succeeded: such an exit is a failure.
  let settled = false;
  process.on('beforeExit', () => {
    if (settled) return;
    settled = true;
    process.stderr.write(
      'snf-image: internal error: the command stopped before it finished (an operation never completed)\n',
    );
    process.exitCode = 70;
  });
  import('./program.ts').then(
    async (m) => {
      const code = await m.main(process.argv);
      settled = true;
      process.exitCode = code;
    },
    (error: unknown) => {
      settled = true;
      fail(error);
    },
  );
}
