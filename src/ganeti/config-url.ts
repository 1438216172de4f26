/**
 * config_url: fetch a JSON document whose keys override the OS parameters (as upstream),
 * with a timeout, a size cap and non-2xx as an error. The document is validated against
 * the published config-document schema before anything uses it. It may not name a
 * file:// os_answer_file (only the administrator's own parameters may).
 */
import { displayUrl } from '../image/image-id.ts';
import { validateJson } from '../schemas/validate.ts';
import { UserError } from '../util/errors.ts';
import { Secret } from '../util/secret.ts';
import { fetchFailure, undiciTls, type TlsTrust } from '../util/tls-trust.ts';
import { wrapSecrets, type RawParams } from './params.ts';

export interface FetchConfigOptions {
  timeoutSeconds: number;
  maxBytes: number;
  tls: TlsTrust;
}

export async function fetchConfigDocument(url: string, options: FetchConfigOptions): Promise<Map<string, string>> {
  const shown = displayUrl(new URL(url));
  const timeoutMs = Math.max(1, Math.round(options.timeoutSeconds * 1000));
  const { Agent, interceptors, request } = await import('undici');
  const dispatcher = new Agent({
    connectTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: undiciTls(options.tls),
  }).compose(interceptors.redirect({ maxRedirections: 5 }));
  const signal = AbortSignal.timeout(timeoutMs);
  let body = '';
  try {
    const response = await request(url, { dispatcher, signal, headers: { accept: 'application/json' } });
    if (response.statusCode < 200 || response.statusCode > 299) {
      await response.body.dump();
      throw new UserError(`config_url: ${shown} answered HTTP ${response.statusCode}`);
    }
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > options.maxBytes) {
        response.body.destroy();
        throw new UserError(
          `config_url: document from ${shown} is larger than CONFIG_URL_MAX_SIZE (${options.maxBytes} bytes)`,
        );
      }
      chunks.push(buf);
    }
    body = Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    if (error instanceof UserError) throw error;
    const why = signal.aborted ? `no answer within ${options.timeoutSeconds} s` : fetchFailure(error);
    throw new UserError(`config_url: cannot fetch ${shown}: ${why}`);
  } finally {
    await dispatcher.close().catch(() => undefined);
  }
  return parseConfigDocument(body, shown);
}

/** Parses and validates a config document; keys are case-insensitive. */
export function parseConfigDocument(body: string, source: string): Map<string, string> {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    throw new UserError(`config_url: document from ${source} is not valid JSON`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new UserError(`config_url: document from ${source} must be a JSON object`);
  // No prototype: a "__proto__" key is a key (refused as unknown), not the object's prototype.
  const lowered = Object.create(null) as Record<string, unknown>;
  for (const [key, value] of Object.entries(data)) lowered[key.toLowerCase()] = value;
  // Secret values must not leak through a validation message: register them first.
  for (const key of ['img_passwd', 'img_passwd_hash', 'auth_keys', 'cloud_userdata', 'os_product_key']) {
    const v = lowered[key];
    if (typeof v === 'string') new Secret(v);
  }
  const problems = validateJson('config-document', lowered, 'config_url document');
  if (problems.length > 0) throw new UserError(problems.join('; '));
  // The document may come over plain http: it must not make this host read one of its files.
  const answerFile = lowered.os_answer_file;
  if (typeof answerFile === 'string' && /^\s*file:/i.test(answerFile))
    throw new UserError(
      'os_answer_file: a config_url document may not name a file:// answer file (use http(s):// or ftp(s)://)',
    );
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(lowered))
    out.set(key, typeof value === 'string' ? value : JSON.stringify(value));
  return out;
}

/** The document's values override the given parameters; config_url itself is kept. */
export function applyConfigDocument(
  params: RawParams,
  document: ReadonlyMap<string, string>,
): Map<string, string | Secret> {
  const merged = new Map(params);
  for (const [key, value] of wrapSecrets(document)) merged.set(key, value);
  return merged;
}
