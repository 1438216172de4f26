/**
 * img_id syntax: which source back-end an id names, checked without touching the image.
 *   local://NAME, file://NAME (legacy), NAME    -> a file inside IMAGE_DIR
 *   http(s)://URL, ftp(s)://URL                 -> remote image
 *   null                                        -> write nothing, customize the disk as it is
 */
import { resolve, sep } from 'node:path';

export type ParsedImageId =
  | { kind: 'local'; name: string; path: string }
  | { kind: 'http' | 'ftp'; url: URL }
  | { kind: 'null' };

export class ImageIdError extends Error {}

/** Resolves a local image name inside imageDir; refuses names whose path escapes it. */
function resolveLocalImagePath(name: string, imageDir: string): string {
  if (name === '' || name.includes('\0')) throw new ImageIdError('local image name is empty');
  const root = resolve(imageDir);
  // An absolute name inside IMAGE_DIR is taken as is; any other name is relative to it.
  const relative = name.startsWith(`${root}/`) ? name.slice(root.length + 1) : name.replace(/^\/+/, '');
  const path = resolve(root, relative);
  if (!path.startsWith(root + sep)) throw new ImageIdError(`local image path escapes IMAGE_DIR (${root})`);
  return path;
}

export function parseImageId(id: string, imageDir: string): ParsedImageId {
  const trimmed = id.trim();
  if (trimmed === '') throw new ImageIdError('must not be empty');
  if (trimmed === 'null') return { kind: 'null' };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(trimmed)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'local', name: trimmed, path: resolveLocalImagePath(trimmed, imageDir) };
  if (scheme === 'local' || scheme === 'file') {
    const name = trimmed.slice(scheme.length + 1).replace(/^\/\//, '');
    return { kind: 'local', name, path: resolveLocalImagePath(name, imageDir) };
  }
  if (['http', 'https', 'ftp', 'ftps'].includes(scheme)) {
    let url: URL;
    try {
      url = new URL(trimmed);
    } catch {
      throw new ImageIdError('is not a valid URL');
    }
    if (url.hostname === '') throw new ImageIdError('URL has no host');
    return { kind: scheme.startsWith('http') ? 'http' : 'ftp', url };
  }
  throw new ImageIdError(`unsupported scheme '${scheme}:' (use local://, http(s)://, ftp(s):// or null)`);
}

/** An img_id for logs and errors: a URL without its user:password, anything else as given. */
export function displayImageId(id: string): string {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(id.trim())) return id;
  try {
    return displayUrl(new URL(id.trim()));
  } catch {
    // Not a URL: it may still hold user:password@ (parseImageId refuses it later).
    return id.replace(/\/\/[^/@]*@/, '//');
  }
}

/** A URL without user:password, for logs and errors. */
export function displayUrl(url: URL): string {
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

/**
 * A curl config line naming the URL (credentials and all): for curl's stdin, never its
 * argv. A parsed URL's href has no raw control characters, so it stays one line.
 */
export function curlConfigUrl(url: URL): string {
  return `url = "${url.href.replace(/(["\\])/g, '\\$1')}"\n`;
}
