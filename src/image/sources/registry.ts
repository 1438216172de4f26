/**
 * The image source back-ends, ordered by priority (configurable with SOURCE_PRIORITIES,
 * e.g. "http=40 local=10"), minus the disabled ones (SOURCES_DISABLED). The first back-end
 * whose probe accepts the img_id opens it. With the image cache on, a cacheable back-end
 * (http) is served through it.
 */
import { UserError } from '../../util/errors.ts';
import type { CacheOptions } from '../cache.ts';
import { cachedHttpSource } from './cached-http.ts';
import { ftpSource } from './ftp.ts';
import { httpSource } from './http.ts';
import { localSource } from './local.ts';
import { nullSource } from './null.ts';
import type { ImageSource } from './source.ts';

const SOURCES: readonly ImageSource[] = [nullSource, httpSource, ftpSource, localSource];

export function orderedSources(priorities: ReadonlyMap<string, number>, disabled: readonly string[]): ImageSource[] {
  return SOURCES.filter((s) => !disabled.includes(s.name)).sort(
    (a, b) => (priorities.get(b.name) ?? b.defaultPriority) - (priorities.get(a.name) ?? a.defaultPriority),
  );
}

export function selectSource(
  imgId: string,
  priorities: ReadonlyMap<string, number>,
  disabled: readonly string[],
  cache?: CacheOptions,
): ImageSource {
  const source = orderedSources(priorities, disabled).find((s) => s.probe(imgId));
  if (!source) {
    const off = SOURCES.filter((s) => disabled.includes(s.name) && s.probe(imgId)).map((s) => s.name);
    throw new UserError(
      `img_id: no enabled image source handles this id${off.length > 0 ? ` (disabled: ${off.join(', ')})` : ''}`,
    );
  }
  return cache !== undefined && source.cacheable === true ? cachedHttpSource(source, cache) : source;
}
