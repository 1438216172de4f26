/**
 * local://NAME, file://NAME (legacy) and bare names: a file inside IMAGE_DIR, opened once
 * (confined-file.ts: no link leading out of IMAGE_DIR, O_NOFOLLOW, checked on the open
 * descriptor). Every reader gets that open file through /proc/<pid>/fd/<n>, never the
 * name again, so a name swapped after the checks changes nothing. Pages read are dropped
 * from the page cache behind the read position so a deployment does not fill it.
 */
import { createReadStream } from 'node:fs';
import { UserError } from '../../util/errors.ts';
import { ConfinementError, openConfined, type ConfinedFile } from '../confined-file.ts';
import { parseImageId } from '../image-id.ts';
import type { ImageSource, OpenedImage, SourceSettings } from './source.ts';

export const READ_CHUNK = 4 * 1024 * 1024;

export const localSource: ImageSource = {
  name: 'local',
  defaultPriority: 10,
  probe: (imgId) => !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(imgId) || /^(local|file):/i.test(imgId),
  async open(imgId: string, settings: SourceSettings): Promise<OpenedImage> {
    const parsed = parseImageId(imgId, settings.imageDir);
    if (parsed.kind !== 'local') throw new UserError(`img_id: ${imgId} is not a local image`);
    let file: ConfinedFile;
    try {
      file = await openConfined(parsed.path, settings.imageDir);
    } catch (error) {
      if (!(error instanceof ConfinementError)) throw error;
      if (error.problem === 'not-file')
        throw new UserError(`img_id: local image '${parsed.name}' is not a regular file`);
      if (error.problem === 'missing')
        throw new UserError(`img_id: local image '${parsed.name}' not found in IMAGE_DIR ${settings.imageDir}`);
      throw new UserError(`img_id: local image '${parsed.name}' resolves outside IMAGE_DIR ${settings.imageDir}`);
    }
    let closed = false;
    return {
      size: file.size,
      description: `local image ${file.realPath}`,
      localPath: file.procPath,
      stream: () => createReadStream(file.procPath, { highWaterMark: READ_CHUNK }),
      close: async () => {
        if (closed) return;
        closed = true;
        await file.handle.close();
      },
    };
  },
};
