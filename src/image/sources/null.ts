/** img_id=null: write nothing; the helper customizes the disk as it is. */
import type { ImageSource } from './source.ts';

export const nullSource: ImageSource = {
  name: 'null',
  defaultPriority: 30,
  probe: (imgId) => imgId === 'null',
  async open() {
    return {
      size: 0,
      nothingToCopy: true,
      description: 'no image (null): the disk is customized as it is',
      async *stream() {},
      close: async () => undefined,
    };
  },
};
