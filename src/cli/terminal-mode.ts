/**
 * Whether a deployment shows the terminal view: only to a person (stderr is a terminal) who
 * asked for neither the full log (--verbose, IMAGE_DEBUG, Ganeti's debug level) nor JSON
 * log lines. In the view the log keeps only warnings and errors, drawn through the view.
 */
import type { ScriptContext } from '../ganeti/context.ts';
import { configureLogging } from '../log/logger.ts';
import { TerminalView } from '../monitor/terminal-view.ts';

export function startTerminalView(
  ctx: ScriptContext,
  verbose: boolean,
  stream: NodeJS.WriteStream = process.stderr,
): TerminalView | undefined {
  const s = ctx.config.settings;
  if (!stream.isTTY || verbose || s.IMAGE_DEBUG || ctx.env.core.debugLevel > 0 || s.LOG_FORMAT === 'json')
    return undefined;
  const view = new TerminalView((text) => void stream.write(text));
  configureLogging({ format: 'text', level: 'warn', sink: view, timestamps: false });
  return view;
}
