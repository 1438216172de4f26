/**
 * http(s) images through the node-local cache (IMAGE_CACHE, see ../cache.ts).
 *
 * Under the URL's cache lock: a sound cached entry is revalidated with If-None-Match /
 * If-Modified-Since (304: served from the cache file, as a local file; 200: downloaded
 * again). A download streams to the deployment and into <key>.part at the same time; the
 * entry is published when the download is complete (Content-Length bytes) and its checksum,
 * when one is expected, matched. Deployments of the same URL meanwhile wait for the lock
 * and then use the fresh entry without asking the server again. Virtual-disk images
 * (needFile) are downloaded into the cache first and read by qemu-img from there.
 *
 * The HTTP side matches sources/http.ts: redirects, non-2xx is an error, timeouts, and a
 * dropped connection resumed with a Range request (If-Range) up to HTTP_RETRIES times;
 * every download within the limits of download-limits.ts.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { log } from '../../log/logger.ts';
import { UserError } from '../../util/errors.ts';
import {
  ImageCache,
  type CacheEntry,
  type CacheLock,
  type CacheMeta,
  type CacheOptions,
  type CacheWriter,
} from '../cache.ts';
import type { ExpectedDigest } from '../checksum.ts';
import { checkAnnouncedSize } from '../download-limits.ts';
import { displayUrl } from '../image-id.ts';
import { READ_CHUNK } from './local.ts';
import { header, httpGetter, resumableBody, type Response } from './http.ts';
import type { ImageSource, OpenedImage, SourceSettings } from './source.ts';

export interface CachedImage extends OpenedImage {
  /** The checksum the deployment still has to verify; undefined when the cache did. */
  pendingDigest: ExpectedDigest | undefined;
  /** hit: served from the cache; download: fetched (and cached); bypass: fetched, not cached. */
  via: 'hit' | 'download' | 'bypass';
}

export interface CachedOpenOptions {
  digest?: ExpectedDigest | undefined;
  /** The consumer needs a file (qemu-img): download completely into the cache first. */
  needFile?: boolean;
  /** Test hook: how long a lock may go without progress before it is bypassed. */
  stallMs?: number;
}

interface Remote {
  status: number;
  size: number | undefined;
  etag: string | undefined;
  lastModified: string | undefined;
  /** When the response arrived. */
  at: number;
  body(): AsyncGenerator<Uint8Array>;
  close(): Promise<void>;
}

/** One GET (conditional when headers say so): 2xx or 304, anything else is an error. */
async function fetchRemote(
  url: URL,
  shown: string,
  settings: SourceSettings,
  conditional: Record<string, string>,
): Promise<Remote> {
  const getter = await httpGetter(url, shown, settings);
  const { dispatcher, get } = getter;
  let first: Response;
  try {
    first = await get(conditional);
  } catch (error) {
    await dispatcher.close().catch(() => undefined);
    throw error;
  }
  const close = async (): Promise<void> => {
    await first.body.dump().catch(() => undefined);
    await dispatcher.close().catch(() => undefined);
  };
  if (first.statusCode !== 304 && (first.statusCode < 200 || first.statusCode > 299)) {
    await close();
    throw new UserError(`img_id: ${shown} answered HTTP ${first.statusCode}`);
  }
  const lengthHeader = header(first, 'content-length');
  const size =
    first.statusCode !== 304 && lengthHeader !== undefined && /^\d+$/.test(lengthHeader)
      ? Number(lengthHeader)
      : undefined;
  try {
    checkAnnouncedSize(shown, size, getter.limits);
  } catch (error) {
    first.body.destroy();
    await dispatcher.close().catch(() => undefined);
    throw error;
  }
  const etag = header(first, 'etag');
  const lastModified = header(first, 'last-modified');
  const validator = etag ?? lastModified;
  const resumable = header(first, 'accept-ranges') === 'bytes' && size !== undefined;

  const body = () =>
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

  return { status: first.statusCode, size, etag, lastModified, at: Date.now(), body, close };
}

/** The same text as checksum.ts verified() gives. */
function mismatch(expected: ExpectedDigest, actual: string): UserError {
  return new UserError(
    `img_id: ${expected.algorithm} checksum mismatch (expected ${expected.hex.slice(0, 16)}… from ${expected.from}, got ${actual.slice(0, 16)}…): the image is corrupt or not the one named`,
  );
}

function conditionalHeaders(meta: CacheMeta): Record<string, string> {
  return {
    ...(meta.etag !== undefined ? { 'if-none-match': meta.etag } : {}),
    ...(meta.lastModified !== undefined ? { 'if-modified-since': meta.lastModified } : {}),
  };
}

/** Fetched without the cache; the deployment verifies the checksum itself. */
function bypass(remote: Remote, shown: string, digest: ExpectedDigest | undefined): CachedImage {
  return {
    size: remote.size,
    description: shown,
    stream: remote.body,
    close: remote.close,
    pendingDigest: digest,
    via: 'bypass',
  };
}

/** Serves a sound entry: marks it in use, releases the lock. */
async function serveEntry(
  cache: ImageCache,
  lock: CacheLock,
  entry: CacheEntry,
  shown: string,
  digest: ExpectedDigest | undefined,
): Promise<CachedImage> {
  let done: () => Promise<void>;
  try {
    done = await cache.markUse(lock, entry);
  } finally {
    await lock.release();
  }
  await cache
    .evict({ key: lock.key, bytes: entry.meta.size })
    .catch((error: unknown) =>
      log().warn(`image cache eviction failed: ${error instanceof Error ? error.message : String(error)}`),
    );
  // The sha256 recorded while downloading stands for the content (its size was checked now).
  const known = digest?.algorithm === 'sha256' && digest.hex === entry.meta.sha256;
  return {
    size: entry.meta.size,
    description: `${shown} (cached: ${entry.path})`,
    localPath: entry.path,
    stream: () => createReadStream(entry.path, { highWaterMark: READ_CHUNK }),
    close: done,
    pendingDigest: known ? undefined : digest,
    via: 'hit',
  };
}

interface Tee {
  /** The download: yields every byte, checks the checksum, then starts publishing. */
  stream(): AsyncGenerator<Uint8Array>;
  /** Resolves when publishing is over: the entry, or undefined when it was not cached. */
  published(): Promise<CacheMeta | undefined>;
  /** Abandons an unpublished download. */
  abort(): Promise<void>;
}

function tee(remote: Remote, writer: CacheWriter, digest: ExpectedDigest | undefined): Tee {
  let publishing: Promise<CacheMeta | undefined> | undefined;
  async function* stream(): AsyncGenerator<Uint8Array> {
    const sha256 = createHash('sha256');
    const other: Hash | undefined = digest && digest.algorithm !== 'sha256' ? createHash(digest.algorithm) : undefined;
    try {
      for await (const chunk of remote.body()) {
        sha256.update(chunk);
        other?.update(chunk);
        await writer.write(chunk);
        yield chunk;
      }
    } catch (error) {
      await writer.abort();
      throw error;
    }
    const hex = sha256.digest('hex');
    if (digest) {
      const actual = other ? other.digest('hex') : hex;
      if (actual !== digest.hex) {
        await writer.abort();
        throw mismatch(digest, actual);
      }
    }
    // Synced and renamed in the background: the deployment finishes its own writes meanwhile.
    publishing = writer.publish(hex);
  }
  return {
    stream,
    published: async () => (publishing ? publishing : undefined),
    abort: async () => {
      if (!publishing) await writer.abort();
    },
  };
}

/** A 2xx answer: download it, through the cache when it can hold the image. */
async function download(
  cache: ImageCache,
  lock: CacheLock,
  remote: Remote,
  url: URL,
  shown: string,
  settings: SourceSettings,
  options: CachedOpenOptions,
): Promise<CachedImage> {
  const digest = options.digest;
  let writer: CacheWriter | undefined;
  if (remote.size === undefined) {
    log().info({ url: shown }, 'the server sends no Content-Length: the image is not cached');
  } else if (remote.size > cache.maxBytes) {
    log().info(
      { url: shown, bytes: remote.size, maxBytes: cache.maxBytes },
      'the image is larger than IMAGE_CACHE_MAX_SIZE: not cached',
    );
  } else {
    try {
      await cache.evict({ key: lock.key, bytes: remote.size });
      writer = await cache.writer(lock, {
        url: shown,
        etag: remote.etag,
        lastModified: remote.lastModified,
        size: remote.size,
        validated: remote.at,
      });
    } catch (error) {
      log().warn({ url: shown }, `not caching the image: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (!writer) {
    await lock.release();
    return bypass(remote, shown, digest);
  }
  const t = tee(remote, writer, digest);
  if (options.needFile) {
    log().info({ url: shown }, 'downloading the image into the cache (it needs random access)');
    try {
      for await (const _chunk of t.stream()) {
        // written by the tee
      }
    } catch (error) {
      await remote.close();
      await lock.release();
      throw error;
    }
    await remote.close();
    const meta = await t.published();
    if (meta) return serveEntry(cache, lock, { meta, path: cache.dataPath(lock.key, meta.sha256) }, shown, undefined);
    await lock.release();
    log().warn({ url: shown }, 'the download could not be cached: downloading it again without the cache');
    return bypass(await fetchRemote(url, shown, settings, {}), shown, digest);
  }
  let closed = false;
  return {
    size: remote.size,
    description: shown,
    stream: t.stream,
    close: async () => {
      if (closed) return;
      closed = true;
      await t.abort();
      await t.published();
      await remote.close();
      await lock.release();
    },
    pendingDigest: undefined,
    via: 'download',
  };
}

/** Opens an http(s) image through the cache (falls back to a plain download if the cache is unusable). */
export async function openCachedHttp(
  imgId: string,
  settings: SourceSettings,
  cacheOptions: CacheOptions,
  options: CachedOpenOptions = {},
): Promise<CachedImage> {
  const url = new URL(imgId);
  const shown = displayUrl(url);
  const digest = options.digest;
  const cache = new ImageCache(cacheOptions);
  try {
    await cache.prepare();
  } catch (error) {
    log().warn(
      { dir: cacheOptions.dir },
      `image cache unusable (${error instanceof Error ? error.message : String(error)}): downloading without it`,
    );
    return bypass(await fetchRemote(url, shown, settings, {}), shown, digest);
  }
  const key = ImageCache.keyFor(url);
  const asked = Date.now();
  let waitLogged: NodeJS.Timeout | undefined;
  const lock = await cache.lock(
    key,
    (holder) => {
      waitLogged = setTimeout(
        () =>
          log().info(
            { url: shown, pid: holder?.pid },
            'waiting for another deployment of the same image (it is downloading it into the cache)',
          ),
        1000,
      );
      waitLogged.unref();
    },
    options.stallMs,
  );
  clearTimeout(waitLogged);
  if (!lock) {
    log().warn(
      { url: shown },
      "the deployment holding this image's cache lock makes no progress: downloading without the cache",
    );
    return bypass(await fetchRemote(url, shown, settings, {}), shown, digest);
  }
  try {
    const entry = await cache.lookup(lock, shown);
    if (entry && lock.waited && entry.meta.validated >= asked) {
      log().info({ url: shown }, 'image cache hit (fetched by a concurrent deployment)');
      return await serveEntry(cache, lock, entry, shown, digest);
    }
    const conditional = entry ? conditionalHeaders(entry.meta) : {};
    const remote = await fetchRemote(url, shown, settings, conditional);
    if (remote.status === 304) {
      await remote.close();
      if (!entry) throw new UserError(`img_id: ${shown} answered HTTP 304`);
      log().info({ url: shown }, 'image cache hit (the server says it is unchanged)');
      return await serveEntry(cache, lock, await cache.revalidated(lock, entry, remote), shown, digest);
    }
    if (entry)
      log().info(
        { url: shown, validators: Object.keys(conditional).length },
        Object.keys(conditional).length > 0
          ? 'the image changed on the server: downloading it again'
          : 'the cached image has no ETag or Last-Modified to revalidate with: downloading it again',
      );
    return await download(cache, lock, remote, url, shown, settings, options);
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/**
 * `http` served through the cache: the same name, priority and probe; open() goes through
 * the cache, which verifies the expected checksum itself when it downloads.
 */
export function cachedHttpSource(http: ImageSource, cacheOptions: CacheOptions): ImageSource {
  return {
    name: http.name,
    defaultPriority: http.defaultPriority,
    verifiesDigest: true,
    probe: (imgId) => http.probe(imgId),
    open: (imgId, settings, options) => openCachedHttp(imgId, settings, cacheOptions, options),
  };
}
