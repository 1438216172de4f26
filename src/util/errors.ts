import { scrub } from './secret.ts';

/**
 * An error meant for the administrator: one line that names what was wrong (a parameter,
 * an environment variable, a configuration key) and the rule it broke.
 */
export class UserError extends Error {
  readonly exitCode: number;

  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(oneLine(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UserError';
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Several problems found at once (verify, env parsing): one line each. */
export class ValidationError extends UserError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(problems.join('; '));
    this.name = 'ValidationError';
    this.problems = problems.map(oneLine);
  }
}

export function oneLine(text: string): string {
  return scrub(text).replace(/\s*\n\s*/g, ' ').trim();
}

/** The administrator-facing text of any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return oneLine(error.message);
  return oneLine(String(error));
}
