/**
 * The node-local cache of remote images (IMAGE_CACHE_DIR): lookup, per-entry lock, tee
 * writer, atomic publish and LRU eviction. It knows nothing about HTTP; the cached http
 * source (sources/cached-http.ts) drives it.
 *
 * Layout, key = sha256 of the URL without credentials (plus its credentials, if any: see keyFor):
 *   <key>.json         metadata: URL, ETag, Last-Modified, size, sha256, validated, last use
 *   <key>.<sha256>     the image, named by its content: a published file never changes, so a
 *                      deployment (or qemu-img) reading it is never handed other bytes
 *   <key>.part         the download in progress (only the holder of the lock writes it)
 *   <key>.lock         exclusive lock, created with O_EXCL: {pid, start, nonce}; stale when
 *                      that process (pid + start time from /proc) is gone
 *   <key>.use-<nonce>  a deployment reads <key>.<sha256>: eviction leaves that file alone
 * The directory is 0700, every file 0600.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, rmSync } from 'node:fs';
import {
  chmod,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  utimes,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { log } from '../log/logger.ts';
import { registerCleanup, type Cleanup } from '../util/cleanup.ts';
import { displayUrl } from './image-id.ts';

export interface CacheOptions {
  dir: string;
  maxBytes: number;
  /** Hash a cached file before every use (not only check its size). */
  verify: boolean;
}

const metaSchema = z.object({
  version: z.literal(1),
  url: z.string(),
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  created: z.number(),
  /** When the origin last confirmed this content (download or HTTP 304), ms since the epoch. */
  validated: z.number(),
  lastUsed: z.number(),
});
export type CacheMeta = z.infer<typeof metaSchema>;

export interface CacheEntry {
  meta: CacheMeta;
  path: string;
}

/** What a lock or use marker records about the process holding it. */
interface Owner {
  pid: number;
  start: string;
  nonce: string;
}

/** An unwritten lock file older than this was left by a process that died creating it. */
const HALF_WRITTEN_MS = 10_000;
/** A lock whose holder wrote nothing (no heartbeat) for this long is bypassed, not waited for. */
const STALL_MS = 10 * 60_000;
const HEARTBEAT_MS = 5_000;
/** Longest pause between two looks at a held lock. */
const POLL_MAX_MS = 100;
/** Cache writes queued but not yet done before the download waits for them. */
const MAX_INFLIGHT = 32 * 1024 * 1024;

const KEY_FILE = /^([0-9a-f]{64})\.(json|part|[0-9a-f]{64})$/;

/** The start time of a process (clock ticks since boot, /proc/PID/stat field 22). */
function processStart(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

const SELF_START = processStart(process.pid) ?? '';

function ownerAlive(owner: Owner): boolean {
  const start = processStart(owner.pid);
  if (start !== undefined) return start === owner.start;
  if (existsSync('/proc/self/stat')) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseOwner(text: string): Owner | undefined {
  try {
    const value = JSON.parse(text) as Partial<Owner>;
    if (typeof value.pid === 'number' && typeof value.start === 'string' && typeof value.nonce === 'string')
      return { pid: value.pid, start: value.start, nonce: value.nonce };
  } catch {
    // unwritten or foreign content
  }
  return undefined;
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function nonce(): string {
  return randomBytes(8).toString('hex');
}

function why(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface LockFile {
  owner: Owner | undefined;
  ino: number;
  mtimeMs: number;
}

async function readLockFile(path: string): Promise<LockFile | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const st = await fh.stat();
    return { owner: parseOwner(await fh.readFile('utf8')), ino: st.ino, mtimeMs: st.mtimeMs };
  } finally {
    await fh.close();
  }
}

function isStale(lock: LockFile): boolean {
  if (lock.owner) return !ownerAlive(lock.owner);
  return Date.now() - lock.mtimeMs > HALF_WRITTEN_MS;
}

/**
 * Removes a stale lock without removing a live one taken meanwhile by a process that also
 * found it stale: move it aside, check that what moved is the file judged stale, and put
 * anything else back.
 */
async function breakStale(path: string, seen: LockFile): Promise<void> {
  const aside = `${path}.stale-${nonce()}`;
  try {
    await rename(path, aside);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return;
    throw error;
  }
  const moved = await readLockFile(aside);
  if (moved && moved.ino === seen.ino && moved.owner?.nonce === seen.owner?.nonce) {
    log().info({ lock: path, pid: seen.owner?.pid }, 'removed a stale image cache lock (its process is gone)');
  } else {
    await link(aside, path).catch(() =>
      log().warn({ lock: path }, 'image cache lock changed hands while a stale lock was removed'),
    );
  }
  await unlink(aside).catch(() => undefined);
}

/** The exclusive lock of one cache key. */
export class CacheLock {
  readonly key: string;
  readonly path: string;
  readonly nonce: string;
  /** Another process held the lock when it was first asked for. */
  readonly waited: boolean;
  #released = false;

  constructor(key: string, path: string, lockNonce: string, waited: boolean) {
    this.key = key;
    this.path = path;
    this.nonce = lockNonce;
    this.waited = waited;
  }

  async owned(): Promise<boolean> {
    if (this.#released) return false;
    return (await readLockFile(this.path).catch(() => undefined))?.owner?.nonce === this.nonce;
  }

  /** Heartbeat: the holder is making progress (waiters look at the lock's mtime). */
  touch(): void {
    const now = new Date();
    utimes(this.path, now, now).catch(() => undefined);
  }

  async release(): Promise<void> {
    if (this.#released) return;
    const mine = await this.owned();
    this.#released = true;
    if (mine) await unlink(this.path).catch(() => undefined);
  }
}

export interface WriterInfo {
  url: string;
  etag: string | undefined;
  lastModified: string | undefined;
  /** Content-Length: the entry is published only when exactly this many bytes arrived. */
  size: number;
  /** When the response came (the origin's confirmation of this content). */
  validated: number;
}

/**
 * Writes a download into <key>.part while the same bytes go on to the deployment (tee).
 * Writes are queued so the download does not wait for the cache file unless the queue
 * grows large; a write error abandons the cache file, never the deployment.
 */
export class CacheWriter {
  readonly #cache: ImageCache;
  readonly #lock: CacheLock;
  readonly #part: string;
  readonly #info: WriterInfo;
  #fh: FileHandle | undefined;
  #position = 0;
  #pending: Promise<void> = Promise.resolve();
  #inflight = 0;
  #failed: string | undefined;
  #lastBeat = Date.now();
  #done = false;

  readonly #partCleanup: Cleanup;

  constructor(
    cache: ImageCache,
    lock: CacheLock,
    fh: FileHandle,
    part: string,
    info: WriterInfo,
    partCleanup: Cleanup,
  ) {
    this.#cache = cache;
    this.#lock = lock;
    this.#fh = fh;
    this.#part = part;
    this.#info = info;
    this.#partCleanup = partCleanup;
  }

  #fail(reason: string): void {
    if (this.#failed !== undefined) return;
    this.#failed = reason;
    log().warn({ url: this.#info.url }, `not caching the image: ${reason}`);
  }

  /** Queues a chunk; waits only when too much is queued. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#failed !== undefined || this.#done) return;
    const at = this.#position;
    this.#position += chunk.byteLength;
    if (this.#position > this.#info.size) {
      this.#fail(`the server sent more than its Content-Length (${this.#info.size} bytes)`);
      return;
    }
    const fh = this.#fh;
    if (!fh) return;
    this.#inflight += chunk.byteLength;
    this.#pending = this.#pending.then(async () => {
      try {
        if (this.#failed !== undefined) return;
        for (let done = 0; done < chunk.byteLength; ) {
          const { bytesWritten } = await fh.write(chunk, done, chunk.byteLength - done, at + done);
          done += bytesWritten;
        }
      } catch (error) {
        this.#fail(`writing the cache file failed (${why(error)})`);
      } finally {
        this.#inflight -= chunk.byteLength;
      }
    });
    if (Date.now() - this.#lastBeat > HEARTBEAT_MS) {
      this.#lastBeat = Date.now();
      this.#lock.touch();
    }
    if (this.#inflight > MAX_INFLIGHT) await this.#pending;
  }

  /**
   * The download ended and the content is verified (its sha256 given): publish the entry
   * when it is complete (exactly Content-Length bytes). Never throws: a failure only means
   * the image is not cached.
   */
  async publish(sha256: string): Promise<CacheMeta | undefined> {
    if (this.#done) return undefined;
    await this.#pending;
    if (this.#failed === undefined && this.#position !== this.#info.size)
      this.#fail(`got ${this.#position} of ${this.#info.size} bytes`);
    if (this.#failed === undefined && !(await this.#lock.owned())) this.#fail('the cache lock was lost');
    if (this.#failed !== undefined) {
      await this.abort();
      return undefined;
    }
    this.#done = true;
    try {
      const fh = this.#fh as FileHandle;
      await fh.sync();
      await fh.close();
      this.#fh = undefined;
      return await this.#cache.publish(this.#lock, this.#part, {
        version: 1,
        url: this.#info.url,
        ...(this.#info.etag !== undefined ? { etag: this.#info.etag } : {}),
        ...(this.#info.lastModified !== undefined ? { lastModified: this.#info.lastModified } : {}),
        size: this.#info.size,
        sha256,
        created: Date.now(),
        validated: this.#info.validated,
        lastUsed: Date.now(),
      });
    } catch (error) {
      log().warn({ url: this.#info.url }, `not caching the image: publishing it failed (${why(error)})`);
      await this.#fh?.close().catch(() => undefined);
      this.#fh = undefined;
      await unlink(this.#part).catch(() => undefined);
      return undefined;
    } finally {
      this.#partCleanup.dispose();
    }
  }

  /** Drops the partial file (idempotent; a no-op after publish). */
  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#failed ??= 'aborted';
    await this.#pending;
    await this.#fh?.close().catch(() => undefined);
    this.#fh = undefined;
    await unlink(this.#part).catch(() => undefined);
    this.#partCleanup.dispose();
  }
}

export class ImageCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly verify: boolean;

  constructor(options: CacheOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes;
    this.verify = options.verify;
  }

  /**
   * The entry key of a URL: the sha256 of the URL without credentials, with the credentials
   * hashed in when it has any, so URLs that differ only in them never share an entry. The
   * credentials are stored nowhere (the metadata holds the URL without them).
   */
  static keyFor(url: URL): string {
    const hash = createHash('sha256').update(displayUrl(url));
    if (url.username !== '' || url.password !== '') hash.update(`\n${url.username}:${url.password}`);
    return hash.digest('hex');
  }

  #path(name: string): string {
    return join(this.dir, name);
  }

  dataPath(key: string, sha256: string): string {
    return this.#path(`${key}.${sha256}`);
  }

  /** Creates the directory (0700) or tightens its mode. */
  async prepare(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const st = await lstat(this.dir);
    if (!st.isDirectory()) throw new Error(`${this.dir} is not a directory`);
    if ((st.mode & 0o777) !== 0o700) await chmod(this.dir, 0o700);
  }

  async #create(path: string): Promise<string | undefined> {
    const lockNonce = nonce();
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx', 0o600);
    } catch (error) {
      if (errorCode(error) === 'EEXIST') return undefined;
      throw error;
    }
    try {
      await fh.writeFile(
        JSON.stringify({ pid: process.pid, start: SELF_START, nonce: lockNonce, since: new Date().toISOString() }),
      );
    } finally {
      await fh.close();
    }
    return lockNonce;
  }

  /**
   * Waits for the key's lock. Returns undefined when its holder is alive but has made no
   * progress for STALL_MS: the caller then does without the cache rather than wait forever.
   */
  async lock(
    key: string,
    onWait?: (holder: Owner | undefined) => void,
    stallMs = STALL_MS,
  ): Promise<CacheLock | undefined> {
    const path = this.#path(`${key}.lock`);
    let waited = false;
    let delay = 25;
    for (;;) {
      const created = await this.#create(path);
      if (created !== undefined) return new CacheLock(key, path, created, waited);
      const held = await readLockFile(path);
      if (!held) continue;
      if (isStale(held)) {
        await breakStale(path, held);
        continue;
      }
      if (!waited) {
        waited = true;
        onWait?.(held.owner);
      }
      if (Date.now() - held.mtimeMs > stallMs) return undefined;
      // Jittered, so waiters released together do not keep colliding.
      await sleep(delay * (0.5 + Math.random()));
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  /** The key's lock if it is free now (a stale one is broken), else undefined. */
  async tryLock(key: string): Promise<CacheLock | undefined> {
    const path = this.#path(`${key}.lock`);
    for (let attempt = 0; attempt < 3; attempt++) {
      const created = await this.#create(path);
      if (created !== undefined) return new CacheLock(key, path, created, false);
      const held = await readLockFile(path);
      if (held && !isStale(held)) return undefined;
      if (held) await breakStale(path, held);
    }
    return undefined;
  }

  async readMeta(key: string): Promise<CacheMeta | undefined> {
    let text: string;
    try {
      text = await readFile(this.#path(`${key}.json`), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const parsed = metaSchema.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  async #writeMeta(key: string, meta: CacheMeta, durable: boolean): Promise<void> {
    const tmp = this.#path(`${key}.json.tmp`);
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(meta));
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.#path(`${key}.json`));
  }

  async #syncDir(): Promise<void> {
    const fh = await open(this.dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Files of a key that deployments are reading now (stale use markers are removed). */
  async liveUses(key: string): Promise<Set<string>> {
    const files = new Set<string>();
    for (const name of await readdir(this.dir)) {
      if (!name.startsWith(`${key}.use-`)) continue;
      const path = this.#path(name);
      const text = await readFile(path, 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      const owner = parseOwner(text);
      const file = owner ? (JSON.parse(text) as { file?: unknown }).file : undefined;
      if (owner && ownerAlive(owner) && typeof file === 'string') files.add(file);
      else await unlink(path).catch(() => undefined);
    }
    return files;
  }

  /** Deletes a key's data file unless a deployment reads it (the caller holds the key's lock). */
  async #removeIfUnused(key: string, sha256: string): Promise<boolean> {
    if ((await this.liveUses(key)).has(sha256)) return false;
    await unlink(this.dataPath(key, sha256)).catch(() => undefined);
    return true;
  }

  /** Forgets an entry (its file stays while a deployment still reads it). */
  async discard(lock: CacheLock, meta: CacheMeta): Promise<void> {
    await unlink(this.#path(`${lock.key}.json`)).catch(() => undefined);
    await this.#removeIfUnused(lock.key, meta.sha256);
  }

  /**
   * The published entry of the locked key when it is sound: metadata readable and for this
   * URL, the file's size as recorded (and, with IMAGE_CACHE_VERIFY, its sha256). A broken
   * entry is discarded.
   */
  async lookup(lock: CacheLock, url: string): Promise<CacheEntry | undefined> {
    const meta = await this.readMeta(lock.key);
    if (!meta) {
      await unlink(this.#path(`${lock.key}.json`)).catch(() => undefined);
      return undefined;
    }
    const path = this.dataPath(lock.key, meta.sha256);
    const problem = await (async () => {
      if (meta.url !== url) return 'it belongs to another URL';
      let st: Awaited<ReturnType<typeof stat>>;
      try {
        st = await stat(path);
      } catch {
        return 'its file is missing';
      }
      if (!st.isFile() || st.size !== meta.size) return `its file has ${st.size} bytes instead of ${meta.size}`;
      if (this.verify) {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 }))
          hash.update(chunk as Buffer);
        if (hash.digest('hex') !== meta.sha256) return 'its sha256 does not match';
      }
      return undefined;
    })();
    if (problem !== undefined) {
      log().warn({ url, file: path }, `discarding the cached image: ${problem}`);
      await this.discard(lock, meta);
      return undefined;
    }
    return { meta, path };
  }

  /** The origin confirmed the entry (HTTP 304): record when, and any new validators. */
  async revalidated(
    lock: CacheLock,
    entry: CacheEntry,
    validators: { etag: string | undefined; lastModified: string | undefined },
  ): Promise<CacheEntry> {
    const meta: CacheMeta = { ...entry.meta, validated: Date.now() };
    if (validators.etag !== undefined) meta.etag = validators.etag;
    if (validators.lastModified !== undefined) meta.lastModified = validators.lastModified;
    await this.#writeMeta(lock.key, meta, false);
    return { meta, path: entry.path };
  }

  /**
   * A deployment starts reading the entry: a use marker keeps eviction away from its file
   * until the returned function is called; the entry's last use time is now.
   */
  async markUse(lock: CacheLock, entry: CacheEntry): Promise<() => Promise<void>> {
    const marker = this.#path(`${lock.key}.use-${nonce()}`);
    await writeFile(
      marker,
      JSON.stringify({ pid: process.pid, start: SELF_START, nonce: nonce(), file: entry.meta.sha256 }),
      { mode: 0o600, flag: 'wx' },
    );
    await this.#writeMeta(lock.key, { ...entry.meta, lastUsed: Date.now() }, false).catch((error: unknown) =>
      log().warn(`image cache: cannot record the last use (${why(error)})`),
    );
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      await unlink(marker).catch(() => undefined);
    };
  }

  /** Starts writing a download of the locked key into <key>.part. */
  async writer(lock: CacheLock, info: WriterInfo): Promise<CacheWriter> {
    const part = this.#path(`${lock.key}.part`);
    await unlink(part).catch(() => undefined);
    // Removed if the process ends before the download is published or abandoned.
    const cleanup = registerCleanup('image cache .part file', () => unlink(part).catch(() => undefined), {
      sync: () => rmSync(part, { force: true }),
    });
    const fh = await open(part, 'wx', 0o600).catch((error: unknown) => {
      cleanup.dispose();
      throw error;
    });
    return new CacheWriter(this, lock, fh, part, info, cleanup);
  }

  /** Renames a complete, synced <key>.part into place and writes its metadata. */
  async publish(lock: CacheLock, part: string, meta: CacheMeta): Promise<CacheMeta> {
    const previous = await this.readMeta(lock.key);
    await rename(part, this.dataPath(lock.key, meta.sha256));
    await this.#writeMeta(lock.key, meta, true);
    await this.#syncDir();
    if (previous && previous.sha256 !== meta.sha256) await this.#removeIfUnused(lock.key, previous.sha256);
    log().info({ url: meta.url, bytes: meta.size, sha256: meta.sha256 }, 'image cached');
    return meta;
  }

  /**
   * Keeps the cache within maxBytes counting `keep` (the entry about to be used or
   * downloaded, never evicted) at keep.bytes: removes leftovers of dead processes (partial
   * downloads, files no metadata refers to), then least recently used entries. An entry
   * whose lock is held or whose file a deployment reads is skipped.
   */
  async evict(keep: { key: string; bytes: number }): Promise<void> {
    const names = await readdir(this.dir);
    const metas = new Map<string, CacheMeta>();
    const data: Array<{ key: string; sha256: string; size: number }> = [];
    const parts: string[] = [];
    for (const name of names) {
      const m = KEY_FILE.exec(name);
      if (!m || m[1] === keep.key) continue;
      const key = m[1] as string;
      const kind = m[2] as string;
      if (kind === 'json') {
        const meta = await this.readMeta(key);
        if (meta) metas.set(key, meta);
      } else if (kind === 'part') {
        parts.push(key);
      } else {
        const st = await stat(this.#path(name)).catch(() => undefined);
        if (st) data.push({ key, sha256: kind, size: st.size });
      }
    }
    let total = keep.bytes + data.reduce((sum, d) => sum + d.size, 0);
    const withLock = async (key: string, job: (lock: CacheLock) => Promise<void>): Promise<void> => {
      const lock = await this.tryLock(key);
      if (!lock) return;
      try {
        await job(lock);
      } finally {
        await lock.release();
      }
    };
    for (const key of parts) await withLock(key, async () => unlink(this.#path(`${key}.part`)).catch(() => undefined));
    const orphans = data.filter((d) => metas.get(d.key)?.sha256 !== d.sha256);
    for (const orphan of orphans) {
      await withLock(orphan.key, async (lock) => {
        if ((await this.readMeta(lock.key))?.sha256 === orphan.sha256) return;
        if (await this.#removeIfUnused(lock.key, orphan.sha256)) total -= orphan.size;
      });
    }
    const entries = data
      .filter((d) => metas.get(d.key)?.sha256 === d.sha256)
      .sort((a, b) => (metas.get(a.key)?.lastUsed ?? 0) - (metas.get(b.key)?.lastUsed ?? 0));
    for (const entry of entries) {
      if (total <= this.maxBytes) break;
      await withLock(entry.key, async (lock) => {
        const meta = await this.readMeta(lock.key);
        if (meta?.sha256 !== entry.sha256) return;
        if ((await this.liveUses(lock.key)).has(entry.sha256)) return;
        await unlink(this.#path(`${lock.key}.json`)).catch(() => undefined);
        await unlink(this.dataPath(lock.key, entry.sha256)).catch(() => undefined);
        total -= entry.size;
        log().info(
          { url: meta.url, bytes: entry.size, lastUsed: new Date(meta.lastUsed).toISOString() },
          'evicted a cached image (least recently used)',
        );
      });
    }
    if (total > this.maxBytes)
      log().warn(
        { bytes: total, maxBytes: this.maxBytes },
        'the image cache stays above IMAGE_CACHE_MAX_SIZE: the remaining entries are in use',
      );
  }
}
