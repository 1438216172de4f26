/**
 * Logging with pino. By default readable lines on stderr (Ganeti keeps them in the OS log
 * and shows the administrator its last 20 lines on failure); JSON lines on request.
 * Every line passes through scrub() last, so a secret that slipped into a message as text
 * still never reaches the log; Secret values themselves serialize as "[redacted]".
 */
import { pino, type Logger } from 'pino';
import { SECRET_PARAMETER_NAMES } from '../ganeti/os-parameters.ts';
import { scrub } from '../util/secret.ts';

type LogFormat = 'text' | 'json';
type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LineSink {
  write(line: string): void;
}

const stderrSink: LineSink = { write: (line) => void process.stderr.write(line) };

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const HIDDEN_FIELDS = new Set(['level', 'time', 'msg']);

/** Formats one pino JSON record as `TIME LEVEL message key=value ...` (TIME left out on a terminal view). */
function formatTextLine(json: string, timestamps: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const time = !timestamps ? '' : typeof record.time === 'number' ? `${new Date(record.time).toISOString()} ` : ' ';
  const level = LEVEL_NAMES[Number(record.level)] ?? String(record.level);
  const extras = Object.entries(record)
    .filter(([key]) => !HIDDEN_FIELDS.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`);
  return `${time}${level.padEnd(5)} ${String(record.msg ?? '')}${extras.length > 0 ? ` ${extras.join(' ')}` : ''}\n`;
}

function destination(format: LogFormat, sink: LineSink, timestamps: boolean) {
  return {
    write(chunk: string): void {
      const line = format === 'json' ? chunk : formatTextLine(chunk.trimEnd(), timestamps);
      sink.write(scrub(line));
    },
  };
}

/** Field paths pino censors in addition to Secret's own redaction. */
const REDACT_PATHS = SECRET_PARAMETER_NAMES.flatMap((name) => [
  name,
  `*.${name}`,
  `params.${name}`,
  `OSP_${name.toUpperCase()}`,
  `*.OSP_${name.toUpperCase()}`,
]);

interface LoggerOptions {
  format?: LogFormat;
  level?: LogLevel;
  sink?: LineSink;
  /** Text lines start with the time (default); a terminal view leaves it out. */
  timestamps?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: undefined,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (_label, number) => ({ level: number }) },
    },
    destination(options.format ?? 'text', options.sink ?? stderrSink, options.timestamps ?? true),
  );
}

let current: Logger = createLogger();

/** The process-wide logger. */
export function log(): Logger {
  return current;
}

export function configureLogging(options: LoggerOptions): Logger {
  current = createLogger(options);
  return current;
}
