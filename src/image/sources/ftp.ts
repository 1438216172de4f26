/**
 * ftp(s):// images, fetched with curl (Node has no FTP client), with -q first (no
 * ~/.curlrc). The URL goes to curl on its stdin as a config line, so credentials in it
 * never appear in a process listing. ftps:// is FTP over implicit TLS; the certificate is
 * checked as for https (HTTPS_CA_FILE, HTTPS_VERIFY: util/tls-trust.ts).
 *
 * A dropped connection is resumed here, like an http download: a new curl asks for the rest
 * with --continue-at (FTP REST), up to HTTP_RETRIES times. curl's own --retry is not used for
 * the transfer: it would start over and append the whole file again to what it already wrote
 * to stdout.
 * curl bounds each transfer's time (--max-time, what is left of DOWNLOAD_TIMEOUT) and speed
 * (--speed-limit over --speed-time); the byte limit is counted here (curl's --max-filesize
 * only checks the size the server announces).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../../log/logger.ts';
import { UserError } from '../../util/errors.ts';
import { curlTls } from '../../util/tls-trust.ts';
import {
  checkAnnouncedSize,
  downloadLimits,
  limited,
  tooLong,
  tooMuch,
  tooSlow,
  type DownloadLimits,
} from '../download-limits.ts';
import { curlConfigUrl, displayUrl } from '../image-id.ts';
import type { ImageSource, OpenedImage, SourceSettings } from './source.ts';

/**
 * curl's exit codes after which the rest is asked for again: could not connect (7), the
 * data connection failed (10 accept, 13 PASV reply, 15 its host), partial file (18), empty
 * reply (52), send or receive failure (55, 56). Anything else (a login refused, a missing
 * file, a certificate) is final.
 */
const RESUMABLE = new Set([7, 10, 13, 15, 18, 52, 55, 56]);

/** The first line curl wrote on stderr (its error), or a fallback. */
function curlError(stderr: string, fallback: string): string {
  return (
    stderr
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? fallback
  );
}

/** What the server says of the file (SIZE, MDTM), before the download and before each resumption. */
interface FileFacts {
  size: number | undefined;
  modified: string | undefined;
}

/** curl --head: the file's size and modification time (a login refused, a missing file: one line). */
async function fileFacts(shown: string, config: string, args: string[]): Promise<FileFacts> {
  const { execa } = await import('execa');
  try {
    const head = await execa('curl', [...args, '--head'], {
      input: config,
      env: { PATH: process.env.PATH ?? '' },
      extendEnv: false,
    });
    const size = /^content-length:\s*(\d+)\s*$/im.exec(head.stdout)?.[1];
    const modified = /^last-modified:\s*(.{1,100}?)\s*$/im.exec(head.stdout)?.[1];
    return { size: size === undefined ? undefined : Number(size), modified };
  } catch (error) {
    const why = error instanceof Error ? (error as Error & { stderr?: string }).stderr || error.message : String(error);
    throw new UserError(`img_id: cannot fetch ${shown}: ${curlError(why, 'curl failed')}`);
  }
}

interface Transfer {
  shown: string;
  config: string;
  common: string[];
  limits: DownloadLimits;
  started: number;
  facts: FileFacts;
  retries: number;
}

type Child = ReturnType<typeof import('execa').execa>;

async function* transfers(t: Transfer, children: Set<Child>): AsyncGenerator<Uint8Array> {
  const { execa } = await import('execa');
  let position = 0;
  let retries = t.retries;
  for (;;) {
    const left = t.limits.timeoutSeconds - (Date.now() - t.started) / 1000;
    if (left <= 0) throw tooLong(t.shown, t.limits);
    const child = execa(
      'curl',
      [
        ...t.common,
        '--max-time',
        String(Math.max(1, Math.ceil(left))),
        ...(position > 0 ? ['--continue-at', String(position)] : []),
      ],
      {
        input: t.config,
        env: { PATH: process.env.PATH ?? '' },
        extendEnv: false,
        buffer: false,
        stdout: 'pipe',
        stderr: 'pipe',
        reject: false,
      },
    );
    children.add(child);
    let exited = false;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      if (!child.stdout) throw new UserError(`img_id: cannot read ${t.shown}`);
      for await (const chunk of child.stdout) {
        const buf = chunk as Buffer;
        position += buf.byteLength;
        yield buf;
      }
      const result = await child;
      exited = true;
      let code = result.exitCode ?? -1;
      if (code === 0 && t.facts.size !== undefined && position < t.facts.size) {
        code = 18;
        stderr = `curl: (18) the transfer ended after ${position} of ${t.facts.size} bytes`;
      }
      if (code === 0) return;
      // curl's exit codes: 28 timed out (total time, or too slow), 63 larger than --max-filesize.
      if (code === 28 && /too slow/i.test(stderr)) throw tooSlow(t.shown, t.limits);
      if (code === 28) throw tooLong(t.shown, t.limits);
      if (code === 63) throw tooMuch(t.shown, t.limits);
      const why = curlError(stderr, `curl exited with ${code}`);
      if (!RESUMABLE.has(code) || retries <= 0)
        throw new UserError(`img_id: download of ${t.shown} failed after ${position} bytes: ${why}`);
      retries -= 1;
      log().warn({ position, retriesLeft: retries }, `download of ${t.shown} interrupted (${why}); resuming`);
      await sleep(1000 * (t.retries - retries));
      // As If-Range for http: the rest of the same file only.
      const now = await fileFacts(t.shown, t.config, [...t.common, '--max-time', String(t.limits.windowSeconds)]);
      if (now.size !== t.facts.size || now.modified !== t.facts.modified)
        throw new UserError(
          `img_id: ${t.shown} changed on the server during the download (size or modification time); not resumed`,
        );
    } finally {
      children.delete(child);
      if (!exited) {
        child.kill();
        await child.catch(() => undefined);
      }
    }
  }
}

export const ftpSource: ImageSource = {
  name: 'ftp',
  defaultPriority: 20,
  probe: (imgId) => /^ftps?:\/\//i.test(imgId),
  async open(imgId: string, settings: SourceSettings): Promise<OpenedImage> {
    const url = new URL(imgId);
    const shown = displayUrl(url);
    const config = curlConfigUrl(url);
    const limits = downloadLimits(settings);
    const started = Date.now();
    // -q first: no ~/.curlrc.
    const common = [
      '-q',
      '--config',
      '-',
      '--fail',
      '--silent',
      '--show-error',
      '--connect-timeout',
      String(settings.httpTimeoutSeconds),
      '--max-filesize',
      String(limits.maxBytes),
      ...(limits.minSpeed > 0
        ? ['--speed-limit', String(limits.minSpeed), '--speed-time', String(limits.windowSeconds)]
        : []),
      ...(url.protocol === 'ftps:' ? ['--ssl-reqd', ...curlTls(settings.tls)] : []),
    ];
    const facts = await fileFacts(shown, config, [
      ...common,
      '--max-time',
      String(limits.timeoutSeconds),
      '--retry',
      String(settings.httpRetries),
    ]);
    const size = facts.size;
    checkAnnouncedSize(shown, size, limits);
    const children = new Set<Child>();
    const transfer: Transfer = { shown, config, common, limits, started, facts, retries: settings.httpRetries };
    return {
      size,
      description: shown,
      stream: () => limited(transfers(transfer, children), shown, limits, started),
      close: async () => {
        for (const child of children) {
          child.kill();
          await child.catch(() => undefined);
        }
      },
    };
  },
};
