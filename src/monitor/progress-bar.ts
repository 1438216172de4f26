/** A live progress bar on a terminal, for people running `snf-image deploy` by hand. */

const MiB = 1024 * 1024;

function formatBytes(n: number): string {
  return n >= 1024 * MiB ? `${(n / 1024 / MiB).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`;
}

export function renderBar(position: number, total: number | undefined, elapsedSeconds: number, width = 30): string {
  const rate = elapsedSeconds > 0 ? position / elapsedSeconds : 0;
  const speed = `${(rate / MiB).toFixed(0)} MiB/s`;
  if (!total) return `copied ${formatBytes(position)} ${speed}`;
  const fraction = Math.min(1, position / total);
  const filled = Math.round(fraction * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(1).padStart(5)}% ${formatBytes(position)} of ${formatBytes(total)} ${speed}`;
}

/** What shows the image writer's byte progress on a terminal. */
export interface ByteProgressDisplay {
  update(position: number, total: number | undefined, force?: boolean): void;
  /** The write has ended (finished or failed). */
  done(): void;
}

export class TerminalProgress implements ByteProgressDisplay {
  readonly #stream: NodeJS.WriteStream;
  readonly #started = Date.now();
  #last = 0;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
  }

  static forStderr(): TerminalProgress | undefined {
    return process.stderr.isTTY ? new TerminalProgress(process.stderr) : undefined;
  }

  update(position: number, total: number | undefined, force = false): void {
    const now = Date.now();
    if (!force && now - this.#last < 200) return;
    this.#last = now;
    this.#stream.write(`\r${renderBar(position, total, (now - this.#started) / 1000)}\x1b[K`);
  }

  done(): void {
    this.#stream.write('\n');
  }
}
