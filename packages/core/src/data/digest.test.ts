import { describe, expect, it } from 'vitest';
import { sampleSetDigest } from './digest.js';
import type { SampleSet } from './samples.js';

function set(features: number[], labels: number[], sampleShape = [2]): SampleSet {
  return {
    count: labels.length,
    features: { values: Float32Array.from(features), sampleShape },
    labels: { values: Int32Array.from(labels), sampleShape: [] },
  };
}

describe('sampleSetDigest', () => {
  it('is the same for the same samples, and differs for any other value, order, shape or dtype', () => {
    const digest = sampleSetDigest(set([1, 2, 3, 4], [0, 1]));
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(sampleSetDigest(set([1, 2, 3, 4], [0, 1]))).toBe(digest);
    const others = [
      set([1, 2, 3, 5], [0, 1]),
      set([1, 2, 3, 4], [1, 1]),
      set([3, 4, 1, 2], [1, 0]),
      set([1, 2, 3, 4], [0, 1], [1, 2]),
      { ...set([1, 2, 3, 4], [0, 1]), labels: { values: Float32Array.from([0, 1]), sampleShape: [] } },
    ];
    for (const other of others) expect(sampleSetDigest(other)).not.toBe(digest);
  });

  it('digests a Buffer as the Uint8Array of the same bytes', () => {
    const bytes = (values: Uint8Array): SampleSet => ({
      count: 2,
      features: { values, sampleShape: [2] },
      labels: { values: Uint8Array.from([0, 1]), sampleShape: [] },
    });
    expect(sampleSetDigest(bytes(Buffer.from([1, 2, 3, 4])))).toBe(
      sampleSetDigest(bytes(Uint8Array.from([1, 2, 3, 4]))),
    );
  });

  it('reads only the samples of a view into a larger buffer', () => {
    const buffer = new Float32Array([9, 1, 2, 3, 4, 9]);
    const view: SampleSet = {
      count: 2,
      features: { values: buffer.subarray(1, 5), sampleShape: [2] },
      labels: { values: Int32Array.from([0, 1]), sampleShape: [] },
    };
    expect(sampleSetDigest(view)).toBe(sampleSetDigest(set([1, 2, 3, 4], [0, 1])));
  });
});
