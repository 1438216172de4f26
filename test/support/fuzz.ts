/**
 * Property-based fuzzing of parsers of hostile bytes (fast-check). Every property is the
 * same: any input gives a result or a one-line error of the classes the parser is meant to
 * throw, never a crash (TypeError, RangeError, another class, a multi-line message), a
 * hang, or work that grows faster than the input.
 *
 * Runs use a random seed, printed with the run count; SNF_FUZZ_SEED=<seed> replays one.
 * A failure prints fast-check's report: the seed, the path and the (shrunk) counterexample.
 * SNF_FUZZ_SCALE=<n> multiplies the (CI-sized) run counts for a longer hunt.
 */
import fc from 'fast-check';

/** Unicode's mandatory line breaks (LF, VT, FF, CR, NEL, LS, PS): none may be in an error message. */
export const LINE_BREAK = /[\n\v\f\r\u0085\u2028\u2029]/;

export const FUZZ_SEED =
  process.env.SNF_FUZZ_SEED !== undefined ? Number(process.env.SNF_FUZZ_SEED) : Math.floor(Math.random() * 0x7fffffff);
const SCALE = Math.max(1, Number(process.env.SNF_FUZZ_SCALE ?? 1) || 1);

type ErrorClass = abstract new (...args: never[]) => Error;

/** Checks one property with fast-check, printing the parser's name, the run count and the seed. */
export function fuzz<T>(name: string, arbitrary: fc.Arbitrary<T>, predicate: (value: T) => void, runs = 300): void {
  const numRuns = runs * SCALE;
  console.log(`# fuzz ${name}: ${numRuns} runs (seed ${FUZZ_SEED})`);
  fc.assert(fc.property(arbitrary, predicate), { numRuns, seed: FUZZ_SEED });
}

/** The asynchronous form of fuzz(). */
export async function fuzzAsync<T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<void>,
  runs = 100,
): Promise<void> {
  const numRuns = runs * SCALE;
  console.log(`# fuzz ${name}: ${numRuns} runs (seed ${FUZZ_SEED})`);
  await fc.assert(fc.asyncProperty(arbitrary, predicate), { numRuns, seed: FUZZ_SEED });
}

function describeThrown(error: unknown): string {
  if (error instanceof Error) return `${error.constructor.name}: ${JSON.stringify(error.message)}`;
  return `a thrown ${typeof error}: ${JSON.stringify(String(error))}`;
}

/** Throws unless `error` is one of `allowed` (exactly, for Error itself) with a non-empty one-line message. */
export function assertRefusal(error: unknown, allowed: readonly ErrorClass[]): void {
  const known =
    error instanceof Error && allowed.some((c) => (c === Error ? error.constructor === Error : error instanceof c));
  if (!known)
    throw new Error(`unexpected ${describeThrown(error)} (expected ${allowed.map((c) => c.name).join(' or ')})`, {
      cause: error,
    });
  if (error.message.trim() === '') throw new Error(`${error.constructor.name} with an empty message`);
  if (LINE_BREAK.test(error.message))
    throw new Error(`${error.constructor.name} message is not one line: ${JSON.stringify(error.message)}`);
}

/** The parser's result, or undefined when it refused the input the way it is meant to. */
export function parseOrRefuse<R>(parse: () => R, allowed: readonly ErrorClass[]): R | undefined {
  try {
    return parse();
  } catch (error) {
    assertRefusal(error, allowed);
    return undefined;
  }
}

export async function parseOrRefuseAsync<R>(
  parse: () => Promise<R>,
  allowed: readonly ErrorClass[],
): Promise<R | undefined> {
  try {
    return await parse();
  } catch (error) {
    assertRefusal(error, allowed);
    return undefined;
  }
}

/**
 * The most a parser may take on 64 Ki characters of input: linear parsers take a few ms
 * (tens on a loaded machine), quadratic ones seconds.
 */
export const TIME_BUDGET_MS = 400;

/** The fastest of up to three runs that exceed the budget: a busy machine or a GC pause is not super-linear. */
function fastestRun(call: () => unknown): number {
  let best = Infinity;
  for (let attempt = 0; attempt < 3 && best > TIME_BUDGET_MS; attempt++) {
    const started = performance.now();
    try {
      call();
    } catch {
      // refusals are fine here
    }
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

/**
 * Runs `call` on inputs of growing size (1 Ki to `maxUnits`, 64 Ki by default, units of a
 * character or so) and fails as soon as one takes longer than TIME_BUDGET_MS: super-linear
 * work (regular-expression backtracking, quadratic loops) shows long before that, and
 * stopping at the first slow size keeps a failing run short. Errors the call throws are
 * the other properties' business.
 */
export function assertLinearTime<I extends { length: number }>(
  build: (n: number) => I,
  call: (input: I) => unknown,
  maxUnits = 65536,
): void {
  for (let n = 1024; n <= maxUnits; n *= 2) {
    const input = build(n);
    const ms = fastestRun(() => call(input));
    if (ms > TIME_BUDGET_MS)
      throw new Error(
        `${ms.toFixed(0)} ms for an input of ${input.length} (n = ${n}): super-linear, a hang on a larger input`,
      );
  }
}

/** A text that repeats one piece n times between a head and a tail: the shape of backtracking attacks. */
export interface RepeatShape {
  head: string;
  piece: string;
  tail: string;
}

export const repeat = (shape: RepeatShape, n: number): string => shape.head + shape.piece.repeat(n) + shape.tail;

/**
 * Shapes built from the characters that parsers of text treat specially; `starts` are
 * valid beginnings (a key, a tag, a checksum) that get the parser past its first check.
 */
export function repeatShapes(specials: string, starts: readonly string[] = []): fc.Arbitrary<RepeatShape> {
  const unit = fc.constantFrom(...[...specials, ' ', '\t', '\n', '\r', '\u2028', 'a', '0', '=', '#', '"', "'", '\\']);
  const text = (maxLength: number) => fc.array(unit, { maxLength }).map((a) => a.join(''));
  const head =
    starts.length === 0
      ? text(6)
      : fc.oneof(
          text(6),
          fc.tuple(fc.constantFrom(...starts), text(3)).map(([s, t]) => s + t),
        );
  const piece = fc.oneof({ arbitrary: unit, weight: 3 }, { arbitrary: text(3).filter((p) => p !== ''), weight: 1 });
  return fc.record({ head, piece, tail: text(6) });
}

/** Text that parsers of configuration files see: printable ASCII and the awkward rest. */
export function hostileText(maxLength = 300): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength, unit: 'binary' }),
    fc.string({
      maxLength,
      unit: fc.constantFrom(...' \t\n\r=#"\'\\$`{}()[]<>;&|:/.*,+-_aAzZ019\u0085\u2028\u0000\u00e9'),
    }),
  );
}

/** Lines made of the given fragments: structured text that random strings rarely hit. */
export function linesOf(fragments: readonly string[], maxLines = 20): fc.Arbitrary<string> {
  const line = fc
    .array(fc.oneof(fc.constantFrom(...fragments), fc.string({ maxLength: 8, unit: 'binary' })), { maxLength: 6 })
    .map((parts) => parts.join(''));
  return fc.array(line, { maxLength: maxLines }).map((lines) => lines.join('\n'));
}

export interface Mutation {
  at: number;
  /** A byte, or a 32-bit value written little-endian (declared lengths, counts, offsets). */
  value: number;
  wide: boolean;
}

/** Byte and 32-bit field mutations of a valid structure, and truncations of it. */
export function mutationsOf(
  length: number,
  maxMutations = 8,
): fc.Arbitrary<{ mutations: Mutation[]; truncateTo: number | undefined }> {
  const mutation = fc.record({
    at: fc.nat({ max: Math.max(0, length - 1) }),
    value: fc.oneof(
      fc.nat({ max: 255 }),
      fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe),
      fc.nat(),
    ),
    wide: fc.boolean(),
  });
  return fc.record({
    mutations: fc.array(mutation, { maxLength: maxMutations }),
    truncateTo: fc.option(fc.nat({ max: length }), { freq: 4 }).map((v) => v ?? undefined),
  });
}

export function applyMutations(
  base: Uint8Array,
  { mutations, truncateTo }: { mutations: readonly Mutation[]; truncateTo: number | undefined },
): Buffer {
  const out = Buffer.from(base);
  for (const m of mutations) {
    if (m.wide && m.at + 4 <= out.length) out.writeUInt32LE(m.value >>> 0, m.at);
    else out[m.at] = m.value & 0xff;
  }
  return truncateTo === undefined ? out : out.subarray(0, truncateTo);
}

/** Names that break code using plain objects as maps. */
export const PROTOTYPE_KEYS = [
  '__proto__',
  '__PROTO__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
] as const;

/** Thrown when a parser reads its input more often than it may (unbounded work). */
export class WorkBudgetExceeded extends Error {}

/** `record` behind a proxy that throws WorkBudgetExceeded after `limit` property reads. */
export function readBudget<T extends object>(record: T, limit: number): T {
  let reads = 0;
  return new Proxy(record, {
    get(target, key, receiver) {
      if (++reads > limit) throw new WorkBudgetExceeded(`read more than ${limit} times`);
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
}
