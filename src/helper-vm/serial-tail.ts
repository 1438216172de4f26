/**
 * Follows a file QEMU writes a serial port into, and hands over complete lines as they
 * arrive (polling; the files live in the deployment's private directory).
 */
import { open, type FileHandle } from 'node:fs/promises';

export class SerialTail {
  readonly #path: string;
  readonly #onLine: (line: string) => void;
  #handle: FileHandle | undefined;
  #offset = 0;
  #partial = '';
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(path: string, onLine: (line: string) => void) {
    this.#path = path;
    this.#onLine = onLine;
  }

  start(intervalMs = 50): void {
    this.#timer = setInterval(() => void this.poll(), intervalMs);
  }

  async poll(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      if (!this.#handle) {
        try {
          this.#handle = await open(this.#path, 'r');
        } catch {
          return;
        }
      }
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const { bytesRead } = await this.#handle.read(buf, 0, buf.length, this.#offset);
        if (bytesRead === 0) break;
        this.#offset += bytesRead;
        const text = this.#partial + buf.subarray(0, bytesRead).toString('utf8');
        const lines = text.split(/\r?\n/);
        this.#partial = lines.pop() ?? '';
        for (const line of lines) this.#onLine(line.replace(/\r/g, ''));
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Reads what is left and stops; a last line without newline is delivered too. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    while (this.#busy) await new Promise((r) => setTimeout(r, 5));
    await this.poll();
    if (this.#partial !== '') this.#onLine(this.#partial);
    this.#partial = '';
    await this.#handle?.close();
    this.#handle = undefined;
  }
}
