/**
 * Bounds of one remote image download (http, ftp; resumptions included): at most
 * `maxBytes` (what the disk can take: its size plus container overhead), at most
 * DOWNLOAD_TIMEOUT in all, and no slower than DOWNLOAD_MIN_SPEED on average over each
 * HTTP_TIMEOUT spent waiting for the server (time the consumer spends writing is not
 * counted). HTTP_TIMEOUT alone is an idle timeout: a server sending one byte now and then
 * would hold a deployment forever.
 */
import { UserError } from '../util/errors.ts';
import type { SourceSettings } from './sources/source.ts';

const MiB = 1024 * 1024;

export interface DownloadLimits {
  maxBytes: number;
  timeoutSeconds: number;
  /** Bytes per second; 0: no minimum. */
  minSpeed: number;
  windowSeconds: number;
}

export function downloadLimits(settings: SourceSettings): DownloadLimits {
  return {
    maxBytes: settings.downloadMaxBytes,
    timeoutSeconds: settings.downloadTimeoutSeconds,
    minSpeed: settings.downloadMinSpeed,
    windowSeconds: settings.httpTimeoutSeconds,
  };
}

/**
 * The most a download for a disk of `diskBytes` may bring: the disk's size, plus what a
 * fully allocated container can hold besides the data (qcow2 with 512-byte clusters spends
 * about 2 % on tables; compressing incompressible data adds well under 1 %), plus 64 MiB
 * for headers, logs and alignment.
 */
export function downloadByteLimit(diskBytes: number): number {
  return diskBytes + Math.ceil(diskBytes / 32) + 64 * MiB;
}

/** Refuses a download whose announced size (Content-Length, FTP SIZE) is beyond the limit. */
export function checkAnnouncedSize(shown: string, size: number | undefined, limits: DownloadLimits): void {
  if (size !== undefined && size > limits.maxBytes)
    throw new UserError(`img_id: ${shown} is ${size} bytes, more than the ${limits.maxBytes} bytes this disk can take`);
}

export function tooLong(shown: string, limits: DownloadLimits): UserError {
  return new UserError(
    `img_id: download of ${shown} stopped: it took longer than DOWNLOAD_TIMEOUT (${limits.timeoutSeconds} s)`,
  );
}

export function tooSlow(shown: string, limits: DownloadLimits): UserError {
  return new UserError(
    `img_id: download of ${shown} stopped: slower than DOWNLOAD_MIN_SPEED (${limits.minSpeed} bytes/s over ${limits.windowSeconds} s)`,
  );
}

export function tooMuch(shown: string, limits: DownloadLimits): UserError {
  return new UserError(
    `img_id: download of ${shown} stopped: more than ${limits.maxBytes} bytes, the most this disk can take`,
  );
}

/**
 * Passes the download through, counting: stops it (with a one-line error, and by
 * returning the source iterator, which closes the connection) beyond the byte limit, the
 * total time counted from `started`, or below the minimum speed.
 */
export async function* limited(
  input: AsyncIterable<Uint8Array>,
  shown: string,
  limits: DownloadLimits,
  started: number,
): AsyncGenerator<Uint8Array> {
  const windowMs = limits.windowSeconds * 1000;
  const iterator = input[Symbol.asyncIterator]();
  let total = 0;
  let waitedMs = 0;
  let windowBytes = 0;
  let ended = false;
  try {
    for (;;) {
      const asked = performance.now();
      const next = await iterator.next();
      if (next.done === true) {
        ended = true;
        return;
      }
      const chunk = next.value;
      total += chunk.byteLength;
      if (total > limits.maxBytes) throw tooMuch(shown, limits);
      if (Date.now() - started > limits.timeoutSeconds * 1000) throw tooLong(shown, limits);
      waitedMs += performance.now() - asked;
      windowBytes += chunk.byteLength;
      if (waitedMs >= windowMs) {
        if (limits.minSpeed > 0 && (windowBytes * 1000) / waitedMs < limits.minSpeed) throw tooSlow(shown, limits);
        waitedMs = 0;
        windowBytes = 0;
      }
      yield chunk;
    }
  } finally {
    // Stopped early (a limit, or the consumer): close the source, which drops the connection.
    if (!ended) await iterator.return?.();
  }
}
