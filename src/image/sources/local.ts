/**
 * local://NAME, file://NAME (legacy) and bare names: a file inside IMAGE_DIR. The canonical
 * path (symlinks resolved) must stay inside IMAGE_DIR. Pages read are dropped from the
 * page cache behind the read position so a deployment does not fill it.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { UserError } from '../../util/errors.ts';
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
    let real: string;
    let realRoot: string;
    try {
      real = await fs.realpath(parsed.path);
      realRoot = await fs.realpath(settings.imageDir);
    } catch {
      throw new UserError(`img_id: local image '${parsed.name}' not found in IMAGE_DIR ${settings.imageDir}`);
    }
    if (!real.startsWith(realRoot + '/')) throw new UserError(`img_id: local image '${parsed.name}' resolves outside IMAGE_DIR ${settings.imageDir}`);
    const st = await fs.stat(real);
    if (!st.isFile()) throw new UserError(`img_id: local image '${parsed.name}' is not a regular file`);
    return {
      size: st.size,
      description: `local image ${real}`,
      localPath: real,
      stream: () => createReadStream(real, { highWaterMark: READ_CHUNK }),
      close: async () => undefined,
    };
  },
};
