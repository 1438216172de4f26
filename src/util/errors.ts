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

/** Unicode's mandatory line breaks: LF, VT, FF, CR, NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR. */
const LINE_BREAK = /[\n\v\f\r\u0085\u2028\u2029]/;

/**
 * The text as one line: each line break, with the blanks around it, becomes one space. Split
 * and trimmed, not replaced with a regular expression around the break: that backtracks
 * over long runs of blanks (quadratic time on a hostile message).
 */
export function oneLine(text: string): string {
  return scrub(text)
    .split(LINE_BREAK)
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ');
}

/** The administrator-facing text of any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return oneLine(error.message);
  return oneLine(String(error));
}

/** The `code` of a Node system error (ENOENT, EINVAL, ...), if it has one. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}
