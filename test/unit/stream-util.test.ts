import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { peek } from '../../src/image/stream-util.ts';

/** A source that, like readImageFile, overwrites a chunk's buffer once the next is asked for. */
function reusingSource(chunks: number[][], state: { closed: boolean }): AsyncIterable<Uint8Array> {
  const buffer = new Uint8Array(Math.max(...chunks.map((c) => c.length)));
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for (const c of chunks) {
          buffer.fill(0xee);
          buffer.set(c);
          yield buffer.subarray(0, c.length);
        }
      } finally {
        state.closed = true;
      }
    },
  };
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<number[]> {
  const out: number[] = [];
  for await (const c of stream) out.push(...c);
  return out;
}

describe('peek', () => {
  it('head spans several chunks of a buffer-reusing source; the replay is exact', async () => {
    const state = { closed: false };
    const { head, stream } = await peek(reusingSource([[1, 2], [3, 4, 5], [6], [7, 8]], state), 4);
    assert.deepEqual([...head], [1, 2, 3, 4]);
    assert.deepEqual(await collect(stream), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(state.closed, true);
  });

  it('a short stream gives a short head and the whole replay', async () => {
    const { head, stream } = await peek(reusingSource([[9, 8, 7]], { closed: false }), 16);
    assert.deepEqual([...head], [9, 8, 7]);
    assert.deepEqual(await collect(stream), [9, 8, 7]);
  });

  it('abandoning the replay closes the source', async () => {
    const state = { closed: false };
    const { stream } = await peek(reusingSource([[1], [2], [3]], state), 1);
    for await (const _ of stream) break;
    assert.equal(state.closed, true);
  });
});
