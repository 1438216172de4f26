/**
 * http(s):// images with undici: redirects followed, non-2xx is an error, connect and idle
 * timeouts, and a dropped connection resumed with a Range request (If-Range on the ETag or
 * Last-Modified) when the server allows it, up to HTTP_RETRIES times.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { UserError } from '../../util/errors.ts';
import { log } from '../../log/logger.ts';
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
}

/**
 * The body of `first`, resumed with Range requests (If-Range on the validator) when the
 * connection drops and the server allows it; a short body is an error.
 */
export async function* resumableBody(first: Response, o: ResumeOptions): AsyncGenerator<Uint8Array> {
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
      if (o.size !== undefined && position < o.size) throw new Error(`connection closed after ${position} of ${o.size} bytes`);
      return;
    } catch (error) {
      if (error instanceof UserError) throw error;
      const why = error instanceof Error ? error.message : String(error);
      if (!o.resumable || retries <= 0) throw new UserError(`img_id: download of ${o.shown} failed after ${position} bytes (${why})${o.resumable ? '' : '; the server does not allow resuming'}`);
      retries -= 1;
      log().warn({ position, retriesLeft: retries }, `download of ${o.shown} interrupted (${why}); resuming`);
      await sleep(1000 * (o.retries - retries));
      response = await o.get({ range: `bytes=${position}-`, ...(o.validator ? { 'if-range': o.validator } : {}) });
      if (response.statusCode !== 206) {
        await response.body.dump().catch(() => undefined);
        throw new UserError(`img_id: ${o.shown} could not be resumed (HTTP ${response.statusCode}; the image may have changed)`);
      }
    }
  }
}

/**
 * GET requests for one image URL: redirects followed, connect/idle timeouts, errors named.
 * undici is loaded here, on first use: a deployment from a local image never pays for it.
 */
export async function httpGetter(url: URL, shown: string, settings: SourceSettings): Promise<{ dispatcher: Dispatcher; get(headers: Record<string, string>): Promise<Response> }> {
  const { Agent, interceptors, request } = await import('undici');
  const timeoutMs = settings.httpTimeoutSeconds * 1000;
  const dispatcher = new Agent({ connectTimeout: timeoutMs, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }).compose(interceptors.redirect({ maxRedirections: 10 }));
  const get = async (headers: Record<string, string>): Promise<Response> => {
    try {
      return (await request(url, { dispatcher, headers: { 'accept-encoding': 'identity', ...headers } })) as Response;
    } catch (error) {
      throw new UserError(`img_id: cannot fetch ${shown}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  return { dispatcher, get };
}

export const httpSource: ImageSource = {
  name: 'http',
  defaultPriority: 20,
  probe: (imgId) => /^https?:\/\//i.test(imgId),
  async open(imgId: string, settings: SourceSettings): Promise<OpenedImage> {
    const url = new URL(imgId);
    const shown = displayUrl(url);
    const { dispatcher, get } = await httpGetter(url, shown, settings);

    const first = await get({});
    if (first.statusCode < 200 || first.statusCode > 299) {
      await first.body.dump().catch(() => undefined);
      await dispatcher.close();
      throw new UserError(`img_id: ${shown} answered HTTP ${first.statusCode}`);
    }
    const lengthHeader = header(first, 'content-length');
    const size = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const validator = header(first, 'etag') ?? header(first, 'last-modified');
    const resumable = header(first, 'accept-ranges') === 'bytes' && size !== undefined;

    const stream = () => resumableBody(first, { shown, size, resumable, validator, retries: settings.httpRetries, get });

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
