/**
 * Optional image checksums (sha256 or sha512), verified while the image streams: from the
 * SHA256 / SHA512 image properties, or from a SHA256SUMS / SHA512SUMS file next to an
 * http(s) image (at most SUMS_MAX_BYTES). A mismatch fails the deployment.
 */
import { createHash, type Hash } from 'node:crypto';
import { basename } from 'node:path';
import type { Dispatcher, request as undiciRequest } from 'undici';
import { UserError } from '../util/errors.ts';
import { undiciTls, type TlsTrust } from '../util/tls-trust.ts';
import type { ByteStream } from './stream-util.ts';

export interface ExpectedDigest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
  from: string;
}

export function digestFromProperties(properties: Readonly<Record<string, string>>): ExpectedDigest | undefined {
  if (properties.SHA512)
    return { algorithm: 'sha512', hex: properties.SHA512.toLowerCase(), from: 'the SHA512 image property' };
  if (properties.SHA256)
    return { algorithm: 'sha256', hex: properties.SHA256.toLowerCase(), from: 'the SHA256 image property' };
  return undefined;
}

/** Finds the image's line in a SHA256SUMS-style text ("<hex>  <name>" or "<hex> *<name>"). */
export function findInSums(text: string, name: string, algorithm: 'sha256' | 'sha512'): string | undefined {
  const length = algorithm === 'sha256' ? 64 : 128;
  for (const line of text.split('\n')) {
    // Trimmed first, and the name runs to the end (s: across a CR or LS too): a name that
    // stops short makes the blanks before it backtrack, quadratic on a hostile line.
    const m = /^([0-9a-fA-F]+)\s+\*?(.+)$/s.exec(line.trimEnd());
    if (m && m[1]?.length === length && (m[2] === name || basename(m[2] ?? '') === name)) return m[1].toLowerCase();
  }
  return undefined;
}

/** Largest SHA256SUMS / SHA512SUMS read: a line per file is a few hundred bytes. */
const SUMS_MAX_BYTES = 1024 * 1024;

/**
 * Looks for SHA512SUMS, then SHA256SUMS, in the image URL's directory, each within
 * `timeoutMs` in all. One larger than SUMS_MAX_BYTES is refused; one that cannot be
 * fetched gives no checksum.
 */
export async function digestFromSidecar(
  imageUrl: URL,
  timeoutMs: number,
  tls: TlsTrust,
): Promise<ExpectedDigest | undefined> {
  const name = basename(imageUrl.pathname);
  const { Agent, request } = await import('undici');
  const dispatcher = new Agent({ connect: undiciTls(tls) });
  try {
    return await findSidecarDigest(imageUrl, name, timeoutMs, request, dispatcher);
  } finally {
    await dispatcher.close().catch(() => undefined);
  }
}

async function findSidecarDigest(
  imageUrl: URL,
  name: string,
  timeoutMs: number,
  request: typeof undiciRequest,
  dispatcher: Dispatcher,
): Promise<ExpectedDigest | undefined> {
  for (const [file, algorithm] of [
    ['SHA512SUMS', 'sha512'],
    ['SHA256SUMS', 'sha256'],
  ] as const) {
    const url = new URL(file, imageUrl);
    const tooLarge = new UserError(`img_id: ${file} next to the image is larger than ${SUMS_MAX_BYTES} bytes`);
    try {
      const r = await request(url, {
        dispatcher,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (r.statusCode !== 200) {
        await r.body.dump();
        continue;
      }
      const length = r.headers['content-length'];
      if (typeof length === 'string' && Number(length) > SUMS_MAX_BYTES) {
        r.body.destroy();
        throw tooLarge;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of r.body) {
        size += (chunk as Buffer).length;
        if (size > SUMS_MAX_BYTES) {
          r.body.destroy();
          throw tooLarge;
        }
        chunks.push(chunk as Buffer);
      }
      const hex = findInSums(Buffer.concat(chunks).toString('utf8'), name, algorithm);
      if (hex) return { algorithm, hex, from: `${file} next to the image` };
    } catch (error) {
      if (error instanceof UserError) throw error;
      // No sidecar reachable: no checksum from it.
    }
  }
  return undefined;
}

/** Passes the stream through while hashing it; checks the digest at the end. */
export async function* verified(input: ByteStream, expected: ExpectedDigest): ByteStream {
  const hash: Hash = createHash(expected.algorithm);
  for await (const chunk of input) {
    hash.update(chunk);
    yield chunk;
  }
  const actual = hash.digest('hex');
  if (actual !== expected.hex)
    throw new UserError(
      `img_id: ${expected.algorithm} checksum mismatch (expected ${expected.hex.slice(0, 16)}… from ${expected.from}, got ${actual.slice(0, 16)}…): the image is corrupt or not the one named`,
    );
}
