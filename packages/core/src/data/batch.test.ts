import { describe, expect, it } from 'vitest';
import { callosumError } from '../optim/test-support.js';
import { batchFromBytes } from './batch.js';

const images = Uint8Array.from({ length: 3 * 4 }, (_, i) => (i * 37) % 256);
const labels = Uint8Array.of(7, 0, 9);

describe('batchFromBytes', () => {
  it('scales pixels to [0, 1] and widens the labels', () => {
    const batch = batchFromBytes(images, labels);
    expect(batch.count).toBe(3);
    expect([...batch.pixels]).toEqual([...images].map((byte) => Math.fround(byte / 255)));
    expect([...batch.labels]).toEqual([7, 0, 9]);
  });

  it('writes into views of the buffers it is given, the same values as new arrays', () => {
    const buffers = { pixels: new Float32Array(5 * 4).fill(-1), labels: new Int32Array(5).fill(-1) };
    const batch = batchFromBytes(images, labels, buffers);
    expect(batch.pixels.buffer).toBe(buffers.pixels.buffer);
    expect(batch.labels.buffer).toBe(buffers.labels.buffer);
    expect(batch.pixels).toEqual(batchFromBytes(images, labels).pixels);
    expect(batch.labels).toEqual(Int32Array.of(7, 0, 9));
    // A smaller batch next: only its own part is used.
    const next = batchFromBytes(images.subarray(0, 4), labels.subarray(0, 1), buffers);
    expect(next.count).toBe(1);
    expect(next.pixels.length).toBe(4);
  });

  it('refuses buffers too small for the batch', () => {
    expect(() =>
      batchFromBytes(images, labels, { pixels: new Float32Array(11), labels: new Int32Array(3) }),
    ).toThrow(callosumError('SHAPE_MISMATCH', 'hold 11 pixels and 3 labels', 'needs 12 and 3'));
  });
});
