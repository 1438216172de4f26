/**
 * ftp(s):// images, fetched with curl (Node has no FTP client), with -q first (no
 * ~/.curlrc). The URL goes to curl on its stdin as a config line, so credentials in it
 * never appear in a process listing.
 * curl bounds the total time (--max-time) and the speed (--speed-limit over
 * --speed-time); the byte limit is counted here (curl's --max-filesize only checks the
 * size the server announces).
 */
import { UserError } from '../../util/errors.ts';
import { checkAnnouncedSize, downloadLimits, limited, tooLong, tooMuch, tooSlow } from '../download-limits.ts';
import { curlConfigUrl, displayUrl } from '../image-id.ts';
import type { ImageSource, OpenedImage, SourceSettings } from './source.ts';

export const ftpSource: ImageSource = {
  name: 'ftp',
  defaultPriority: 20,
  probe: (imgId) => /^ftps?:\/\//i.test(imgId),
  async open(imgId: string, settings: SourceSettings): Promise<OpenedImage> {
    const { execa } = await import('execa');
    const url = new URL(imgId);
    const shown = displayUrl(url);
    const config = curlConfigUrl(url);
    const limits = downloadLimits(settings);
    const started = Date.now();
    const bounds = [
      '--max-time',
      String(limits.timeoutSeconds),
      '--max-filesize',
      String(limits.maxBytes),
      ...(limits.minSpeed > 0
        ? ['--speed-limit', String(limits.minSpeed), '--speed-time', String(limits.windowSeconds)]
        : []),
    ];
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
      '--retry',
      String(settings.httpRetries),
      ...bounds,
      ...(url.protocol === 'ftps:' ? ['--ssl-reqd'] : []),
    ];
    let size: number | undefined;
    try {
      const head = await execa('curl', [...common, '--head'], {
        input: config,
        env: { PATH: process.env.PATH ?? '' },
        extendEnv: false,
      });
      const m = /content-length:\s*(\d+)/i.exec(head.stdout);
      size = m ? Number(m[1]) : undefined;
    } catch (error) {
      const why =
        error instanceof Error ? (error as Error & { stderr?: string }).stderr || error.message : String(error);
      throw new UserError(`img_id: cannot fetch ${shown}: ${why.trim().split('\n')[0] ?? ''}`);
    }
    checkAnnouncedSize(shown, size, limits);
    const child = execa('curl', common, {
      input: config,
      env: { PATH: process.env.PATH ?? '' },
      extendEnv: false,
      buffer: false,
      stdout: 'pipe',
      stderr: 'pipe',
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    return {
      size,
      description: shown,
      async *stream() {
        if (!child.stdout) throw new UserError(`img_id: cannot read ${shown}`);
        yield* limited(child.stdout, shown, limits, started);
        try {
          await child;
        } catch (error) {
          // curl's exit codes: 28 timed out (total time, or too slow), 63 larger than --max-filesize.
          const code = (error as { exitCode?: number }).exitCode;
          if (code === 28 && /too slow/i.test(stderr)) throw tooSlow(shown, limits);
          if (code === 28) throw tooLong(shown, limits);
          if (code === 63) throw tooMuch(shown, limits);
          throw new UserError(`img_id: download of ${shown} failed: ${stderr.trim().split('\n')[0] ?? 'curl failed'}`);
        }
      },
      close: async () => {
        child.kill();
        await child.catch(() => undefined);
      },
    };
  },
};
