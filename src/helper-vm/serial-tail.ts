/**
 * Follows a file QEMU writes a serial port into (the helper VM is hostile: any bytes, any
 * amount) and hands over complete lines as they arrive (polling; the files live in the
 * deployment's private directory). Work and memory are bounded: every byte is looked at
 * once, a line keeps at most maxLineBytes (the rest is counted and cut with a marker) and at
 * most maxBytes of the port are read at all. Also reads the head of the result port.
 */
import { open, type FileHandle } from 'node:fs/promises';

const MAX_LINE_BYTES = 4096;
const MAX_PORT_BYTES = 8 * 1024 * 1024;
/** The result port: one line, SUCCESS or ERROR: <message>. */
const MAX_RESULT_BYTES = 4096;
const READ_BYTES = 64 * 1024;
const CR = 0x0d;
const LF = 0x0a;

export interface SerialTailOptions {
  maxLineBytes?: number;
  maxBytes?: number;
}

export interface SerialTailStats {
  /** Bytes read from the file (never more than maxBytes). */
  bytesRead: number;
  /** Most bytes of one unfinished line held at once (never more than maxLineBytes). */
  maxBufferedBytes: number;
  linesCut: number;
}

export class SerialTail {
  readonly #path: string;
  readonly #onLine: (line: string) => void;
  readonly #maxBytes: number;
  readonly #line: Buffer;
  readonly #read = Buffer.alloc(READ_BYTES);
  #lineBytes = 0;
  #cutBytes = 0;
  #handle: FileHandle | undefined;
  #exhausted = false;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> | undefined;
  readonly #stats: SerialTailStats = { bytesRead: 0, maxBufferedBytes: 0, linesCut: 0 };

  constructor(path: string, onLine: (line: string) => void, options: SerialTailOptions = {}) {
    this.#path = path;
    this.#onLine = onLine;
    this.#maxBytes = options.maxBytes ?? MAX_PORT_BYTES;
    this.#line = Buffer.alloc(options.maxLineBytes ?? MAX_LINE_BYTES);
  }

  get stats(): Readonly<SerialTailStats> {
    return { ...this.#stats };
  }

  start(intervalMs = 50): void {
    this.#timer = setInterval(() => void this.poll(), intervalMs);
  }

  /** Reads what the file gained since the last poll (one poll at a time). */
  poll(): Promise<void> {
    this.#busy ??= this.#pollOnce().finally(() => (this.#busy = undefined));
    return this.#busy;
  }

  async #pollOnce(): Promise<void> {
    if (this.#exhausted) return;
    if (!this.#handle) {
      try {
        this.#handle = await open(this.#path, 'r');
      } catch {
        return;
      }
    }
    for (;;) {
      const room = this.#maxBytes - this.#stats.bytesRead;
      if (room <= 0) {
        // Exactly maxBytes is fine; one byte more means the port said too much.
        const { bytesRead } = await this.#handle.read(this.#read, 0, 1, this.#stats.bytesRead);
        if (bytesRead > 0) this.#exhaust();
        return;
      }
      const { bytesRead } = await this.#handle.read(
        this.#read,
        0,
        Math.min(this.#read.length, room),
        this.#stats.bytesRead,
      );
      if (bytesRead === 0) return;
      this.#stats.bytesRead += bytesRead;
      this.#consume(this.#read.subarray(0, bytesRead));
    }
  }

  #consume(chunk: Buffer): void {
    let start = 0;
    for (let lf = chunk.indexOf(LF, start); lf !== -1; lf = chunk.indexOf(LF, start)) {
      this.#keep(chunk.subarray(start, lf));
      this.#deliver();
      start = lf + 1;
    }
    this.#keep(chunk.subarray(start));
  }

  #keep(bytes: Buffer): void {
    const room = this.#line.length - this.#lineBytes;
    const kept = Math.min(room, bytes.length);
    bytes.copy(this.#line, this.#lineBytes, 0, kept);
    this.#lineBytes += kept;
    // Cut bytes are counted as content: carriage returns are not.
    for (let i = kept; i < bytes.length; i++) if (bytes[i] !== CR) this.#cutBytes += 1;
    this.#stats.maxBufferedBytes = Math.max(this.#stats.maxBufferedBytes, this.#lineBytes);
  }

  #deliver(): void {
    const bytes = this.#line.subarray(0, this.#lineBytes);
    let text = (bytes.includes(CR) ? Buffer.from(bytes.filter((b) => b !== CR)) : bytes).toString('utf8');
    if (this.#cutBytes > 0) {
      text += ` [... ${this.#cutBytes} more bytes cut]`;
      this.#stats.linesCut += 1;
    }
    this.#lineBytes = 0;
    this.#cutBytes = 0;
    this.#onLine(text);
  }

  #exhaust(): void {
    this.#exhausted = true;
    if (this.#lineBytes > 0 || this.#cutBytes > 0) this.#deliver();
    this.#onLine(`[snf-image: serial output beyond ${this.#maxBytes} bytes ignored]`);
  }

  /** Reads what is left and stops; a last line without newline is delivered too. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#busy;
    await this.poll();
    if (this.#lineBytes > 0 || this.#cutBytes > 0) this.#deliver();
    await this.#handle?.close();
    this.#handle = undefined;
  }
}

/** The first line of a port file, from at most maxBytes of it ('' when there is none). */
export async function readPortHead(path: string, maxBytes = MAX_RESULT_BYTES): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const buf = Buffer.alloc(maxBytes);
    let got = 0;
    while (got < maxBytes) {
      const { bytesRead } = await handle.read(buf, got, maxBytes - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const head = buf.subarray(0, got);
    const lf = head.indexOf(LF);
    return (lf === -1 ? head : head.subarray(0, lf)).toString('utf8').replace(/\r/g, '');
  } finally {
    await handle.close();
  }
}
