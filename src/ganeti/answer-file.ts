/**
 * os_answer_file: the Unattend.xml or sysprep.inf to use instead of the image's, fetched
 * on the host before anything is written (file://, http(s):// with undici, ftp(s):// with
 * curl), with the config_url timeout and size cap. The helper checks its content.
 * A file:// answer file must be inside ANSWER_FILE_DIR, with no link on its path leading
 * out of it: this process reads it as root and its content ends up in the guest.
 */
import { execFile } from 'node:child_process';
import { ConfinementError, openConfined, type ConfinedFile } from '../image/confined-file.ts';
import { curlConfigUrl, displayUrl } from '../image/image-id.ts';
import { UserError } from '../util/errors.ts';
import { curlTls, fetchFailure, undiciTls, type TlsTrust } from '../util/tls-trust.ts';

export interface FetchAnswerFileOptions {
  timeoutSeconds: number;
  maxBytes: number;
  /** ANSWER_FILE_DIR: the only place file:// answer files are read from. */
  dir: string;
  tls: TlsTrust;
}

const tooLarge = (shown: string, max: number) =>
  new UserError(`os_answer_file: ${shown} is larger than CONFIG_URL_MAX_SIZE (${max} bytes)`);

async function readLocal(url: URL, shown: string, o: FetchAnswerFileOptions): Promise<Buffer> {
  if (url.hostname !== '')
    throw new UserError(
      `os_answer_file: ${shown} names a host; a file:// answer file is a path inside ANSWER_FILE_DIR (${o.dir})`,
    );
  let opened: ConfinedFile;
  try {
    opened = await openConfined(decodeURIComponent(url.pathname), o.dir);
  } catch (error) {
    if (!(error instanceof ConfinementError)) throw error;
    const rule = 'file:// answer files are read only from inside it';
    if (error.problem === 'outside')
      throw new UserError(`os_answer_file: ${shown} is outside ANSWER_FILE_DIR (${o.dir}); ${rule}`);
    if (error.problem === 'link-out')
      throw new UserError(
        `os_answer_file: ${shown} resolves outside ANSWER_FILE_DIR (${o.dir}) through a symbolic link; ${rule}`,
      );
    if (error.problem === 'not-file') throw new UserError(`os_answer_file: ${shown} is not a regular file`);
    throw new UserError(`os_answer_file: cannot open ${shown}: ${error.code ?? error.message}`);
  }
  const { handle, size } = opened;
  try {
    if (size > o.maxBytes) throw tooLarge(shown, o.maxBytes);
    const body = await handle.readFile();
    if (body.length > o.maxBytes) throw tooLarge(shown, o.maxBytes);
    return body;
  } finally {
    await handle.close();
  }
}

async function readHttp(url: string, shown: string, o: FetchAnswerFileOptions): Promise<Buffer> {
  const timeoutMs = Math.max(1, Math.round(o.timeoutSeconds * 1000));
  const { Agent, interceptors, request } = await import('undici');
  const dispatcher = new Agent({
    connectTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: undiciTls(o.tls),
  }).compose(interceptors.redirect({ maxRedirections: 5 }));
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await request(url, { dispatcher, signal });
    if (response.statusCode < 200 || response.statusCode > 299) {
      await response.body.dump();
      throw new UserError(`os_answer_file: ${shown} answered HTTP ${response.statusCode}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body) {
      size += (chunk as Buffer).length;
      if (size > o.maxBytes) {
        response.body.destroy();
        throw tooLarge(shown, o.maxBytes);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  } catch (error) {
    if (error instanceof UserError) throw error;
    const why = signal.aborted ? `no answer within ${o.timeoutSeconds} s` : fetchFailure(error);
    throw new UserError(`os_answer_file: cannot fetch ${shown}: ${why}`);
  } finally {
    await dispatcher.close().catch(() => undefined);
  }
}

/**
 * curl with -q first (no ~/.curlrc) and the URL, credentials included, in a config read
 * from its stdin: never in its argv, which every user of the host can read.
 */
function readFtp(url: URL, shown: string, o: FetchAnswerFileOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'curl',
      [
        '-q',
        '-K',
        '-',
        '-sS',
        '--fail',
        '--max-time',
        String(o.timeoutSeconds),
        '--max-filesize',
        String(o.maxBytes),
        ...(url.protocol === 'ftps:' ? curlTls(o.tls) : []),
      ],
      { encoding: 'buffer', maxBuffer: o.maxBytes + 1, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
      (error, stdout, stderr) => {
        if (error)
          reject(
            new UserError(
              `os_answer_file: cannot fetch ${shown}: ${stderr.toString().trim().split('\n').pop() || error.message}`,
            ),
          );
        else resolve(stdout);
      },
    );
    child.stdin?.on('error', () => undefined); // a curl that stops early: its exit status says why
    child.stdin?.end(curlConfigUrl(url));
  });
}

export async function fetchAnswerFile(url: string, o: FetchAnswerFileOptions): Promise<Buffer> {
  const parsed = new URL(url);
  const shown = displayUrl(parsed);
  const body =
    parsed.protocol === 'file:'
      ? await readLocal(parsed, shown, o)
      : parsed.protocol.startsWith('http')
        ? await readHttp(url, shown, o)
        : await readFtp(parsed, shown, o);
  if (body.length === 0) throw new UserError(`os_answer_file: ${shown} is empty`);
  return body;
}
