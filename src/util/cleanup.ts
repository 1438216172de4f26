/**
 * The process-wide cleanup registry: work that must be undone however the process ends
 * (kill the helper VM, remove its work directory, drop a half-written cache file). Cleanups
 * run newest first on SIGTERM, SIGINT and SIGHUP (then the process exits 128+signal), on an
 * uncaught error (exit 1) and at the end of the command; a cleanup with a synchronous
 * variant also runs on a bare process.exit(). Once shutdown has begun nothing new may be
 * registered, so nothing new (a helper VM) starts.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { constants } from 'node:os';
import { log } from '../log/logger.ts';
import { describeError, UserError } from './errors.ts';

export interface Cleanup {
  /** Runs the cleanup now, once, and unregisters it (callers share one run). */
  run(): Promise<void>;
  /** Unregisters it without running it. */
  dispose(): void;
}

export interface CleanupOptions {
  /** A synchronous best effort for a process that exits without running the cleanups. */
  sync?: () => void;
}

interface Entry {
  name: string;
  run: () => Promise<void> | void;
  sync: (() => void) | undefined;
  running: Promise<void> | undefined;
}

/** Thrown by registerCleanup once shutdown has begun. */
class InterruptedError extends UserError {
  constructor(reason: string) {
    super(`interrupted (${reason}): not starting anything new`);
    this.name = 'InterruptedError';
  }
}

const HANDLED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
/** However slow a cleanup is, the process exits this long after shutdown began. */
const SHUTDOWN_LIMIT_MS = 60_000;

const entries: Entry[] = [];
let shutdownReason: string | undefined;
let installed = false;

function runEntry(entry: Entry): Promise<void> {
  entry.running ??= (async () => {
    try {
      await entry.run();
    } catch (error) {
      log().error(`cleanup of ${entry.name} failed: ${describeError(error)}`);
    } finally {
      const at = entries.indexOf(entry);
      if (at !== -1) entries.splice(at, 1);
    }
  })();
  return entry.running;
}

export function registerCleanup(name: string, run: () => Promise<void> | void, options: CleanupOptions = {}): Cleanup {
  if (shutdownReason !== undefined) throw new InterruptedError(shutdownReason);
  const entry: Entry = { name, run, sync: options.sync, running: undefined };
  entries.push(entry);
  return {
    run: () => runEntry(entry),
    dispose: () => {
      const at = entries.indexOf(entry);
      if (at !== -1 && entry.running === undefined) entries.splice(at, 1);
    },
  };
}

export interface TemporaryDirectory {
  path: string;
  /** Removes the directory and everything in it (once), and unregisters it. */
  remove(): Promise<void>;
}

/**
 * mkdtemp(prefix), removed by the registry if the process ends first. Registered before the
 * directory exists, so no signal can slip in between.
 */
export async function temporaryDirectory(prefix: string, name: string): Promise<TemporaryDirectory> {
  let path: string | undefined;
  let made: Promise<string> | undefined;
  const cleanup = registerCleanup(
    name,
    async () => {
      const dir = await made?.catch(() => undefined);
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    },
    { sync: () => path !== undefined && rmSync(path, { recursive: true, force: true }) },
  );
  made = mkdtemp(prefix);
  try {
    path = await made;
  } catch (error) {
    cleanup.dispose();
    throw error;
  }
  return { path, remove: () => cleanup.run() };
}

/** Runs every registered cleanup, newest first, each after the previous one finished. */
export async function runCleanups(): Promise<void> {
  for (let entry = entries.at(-1); entry !== undefined; entry = entries.at(-1)) await runEntry(entry);
}

function shutDown(reason: string, exitCode: number): void {
  if (shutdownReason !== undefined) return;
  shutdownReason = reason;
  const limit = setTimeout(() => {
    log().error(`cleanups still running ${SHUTDOWN_LIMIT_MS / 1000} s after ${reason}: exiting anyway`);
    process.exit(exitCode);
  }, SHUTDOWN_LIMIT_MS);
  void runCleanups().finally(() => {
    clearTimeout(limit);
    process.exit(exitCode);
  });
}

function runSyncFallbacks(): void {
  for (const entry of [...entries].reverse()) {
    if (entry.running !== undefined || entry.sync === undefined) continue;
    try {
      entry.sync();
    } catch {
      // Best effort: the process is exiting.
    }
  }
}

/**
 * Installs the handlers (once): SIGTERM/SIGINT/SIGHUP run the cleanups and exit 128+signal,
 * an uncaught error is logged in one line, cleaned up after and exits 1.
 */
export function installCleanupHandlers(): void {
  if (installed) return;
  installed = true;
  for (const signal of HANDLED_SIGNALS) {
    process.on(signal, () => {
      if (shutdownReason === undefined) log().error(`interrupted by ${signal}: stopping and cleaning up`);
      shutDown(signal, 128 + constants.signals[signal]);
    });
  }
  process.on('uncaughtException', (error) => {
    process.stderr.write(`snf-image: internal error: ${describeError(error)}\n`);
    shutDown('internal error', 1);
  });
  process.on('exit', runSyncFallbacks);
}
