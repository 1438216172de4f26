/**
 * http(s):// images with undici: redirects followed, non-2xx is an error, connect and idle
 * timeouts, and a dropped connection resumed with a Range request (If-Range on the ETag or
 * Last-Modified) when the server allows it, up to HTTP_RETRIES times. Every download is
 * bounded (download-limits.ts): bytes, total time, minimum speed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { UserError } from '../../util/errors.ts';
import { fetchFailure, undiciTls } from '../../util/tls-trust.ts';
import { log } from '../../log/logger.ts';
import { checkAnnouncedSize, downloadLimits, limited, tooLong, type DownloadLimits } from '../download-limits.ts';
import { displayUrl } from '../image-id.ts';
import type { ImageSource, OpenedImage, SourceSettings } from './source.ts';

export interface Response {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

export function header(res: Response, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface ResumeOptions {
  shown: string;
  size: number | undefined;
  resumable: boolean;
  validator: string | undefined;
  retries: number;
  get(headers: Record<string, string>): Promise<Response>;
  limits: DownloadLimits;
  /** When the download started (its first request), ms since the epoch. */
  started: number;
  /** Aborts every request of the download when DOWNLOAD_TIMEOUT is over. */
  deadline: AbortSignal;
}

/**
 * The body of `first`, resumed with Range requests (If-Range on the validator) when the
 * connection drops and the server allows it; a short body is an error. Within the
 * download's limits.
 */
export function resumableBody(first: Response, o: ResumeOptions): AsyncGenerator<Uint8Array> {
  return limited(resumingBody(first, o), o.shown, o.limits, o.started);
}

async function* resumingBody(first: Response, o: ResumeOptions): AsyncGenerator<Uint8Array> {
  let response = first;
  let position = 0;
  let retries = o.retries;
  for (;;) {
    try {
      for await (const chunk of response.body) {
        const buf = chunk as Buffer;
        position += buf.byteLength;
        yield buf;
      }
      if (o.size !== undefined && position < o.size)
        throw new Error(`connection closed after ${position} of ${o.size} bytes`);
      return;
    } catch (error) {
      if (error instanceof UserError) throw error;
      if (o.deadline.aborted) throw tooLong(o.shown, o.limits);
      const why = error instanceof Error ? error.message : String(error);
      if (!o.resumable || retries <= 0)
        throw new UserError(
          `img_id: download of ${o.shown} failed after ${position} bytes (${why})${o.resumable ? '' : '; the server does not allow resuming'}`,
        );
      retries -= 1;
      log().warn({ position, retriesLeft: retries }, `download of ${o.shown} interrupted (${why}); resuming`);
      await sleep(1000 * (o.retries - retries));
      response = await o.get({ range: `bytes=${position}-`, ...(o.validator ? { 'if-range': o.validator } : {}) });
      if (response.statusCode !== 206) {
        await response.body.dump().catch(() => undefined);
        throw new UserError(
          `img_id: ${o.shown} could not be resumed (HTTP ${response.statusCode}; the image may have changed)`,
        );
      }
    }
  }
}

export interface HttpGetter {
  dispatcher: Dispatcher;
  get(headers: Record<string, string>): Promise<Response>;
  limits: DownloadLimits;
  started: number;
  deadline: AbortSignal;
}

/**
 * GET requests for one image URL: redirects followed, connect/idle timeouts, errors named,
 * all of them aborted when DOWNLOAD_TIMEOUT is over. undici is loaded here, on first use:
 * a deployment from a local image never pays for it.
 */
export async function httpGetter(url: URL, shown: string, settings: SourceSettings): Promise<HttpGetter> {
  const { Agent, interceptors, request } = await import('undici');
  const timeoutMs = settings.httpTimeoutSeconds * 1000;
  const limits = downloadLimits(settings);
  const started = Date.now();
  const deadline = AbortSignal.timeout(Math.max(1, Math.round(limits.timeoutSeconds * 1000)));
  const dispatcher = new Agent({
    connectTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: undiciTls(settings.tls),
  }).compose(interceptors.redirect({ maxRedirections: 10 }));
  const get = async (headers: Record<string, string>): Promise<Response> => {
    try {
      return (await request(url, {
        dispatcher,
        signal: deadline,
        headers: { 'accept-encoding': 'identity', ...headers },
      })) as Response;
    } catch (error) {
      if (deadline.aborted) throw tooLong(shown, limits);
      throw new UserError(`img_id: cannot fetch ${shown}: ${fetchFailure(error)}`);
    }
  };
  return { dispatcher, get, limits, started, deadline };
}

export const httpSource: ImageSource = {
  name: 'http',
  defaultPriority: 20,
  cacheable: true,
  probe: (imgId) => /^https?:\/\//i.test(imgId),
  async open(imgId: string, settings: SourceSettings): Promise<OpenedImage> {
    const url = new URL(imgId);
    const shown = displayUrl(url);
    const getter = await httpGetter(url, shown, settings);
    const { dispatcher, get } = getter;

    const first = await get({});
    if (first.statusCode < 200 || first.statusCode > 299) {
      await first.body.dump().catch(() => undefined);
      await dispatcher.close();
      throw new UserError(`img_id: ${shown} answered HTTP ${first.statusCode}`);
    }
    const lengthHeader = header(first, 'content-length');
    const size = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    try {
      checkAnnouncedSize(shown, size, getter.limits);
    } catch (error) {
      first.body.destroy();
      await dispatcher.close().catch(() => undefined);
      throw error;
    }
    const validator = header(first, 'etag') ?? header(first, 'last-modified');
    const resumable = header(first, 'accept-ranges') === 'bytes' && size !== undefined;

    const stream = () =>
      resumableBody(first, {
        shown,
        size,
        resumable,
        validator,
        retries: settings.httpRetries,
        get,
        limits: getter.limits,
        started: getter.started,
        deadline: getter.deadline,
      });

    return {
      size,
      description: shown,
      stream,
      close: async () => {
        await first.body.dump().catch(() => undefined);
        await dispatcher.close().catch(() => undefined);
      },
    };
  },
};
