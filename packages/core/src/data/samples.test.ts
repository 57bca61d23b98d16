import { describe, expect, it } from 'vitest';
import { callosumError } from '../optim/test-support.js';
import { batchBuffers, gatherSamples, type SampleSet, sliceBatch, toSampleBatch } from './samples.js';

const images = Uint8Array.from({ length: 3 * 4 }, (_, i) => (i * 37) % 256);
const labels = Uint8Array.of(7, 0, 9);
const raw = { count: 3, features: images, labels };
const pixels = { featureDtype: 'float32', featureDivisor: 255, labelDtype: 'int32' } as const;

describe('toSampleBatch', () => {
  it('scales bytes by the divisor into float32 features and widens the labels', () => {
    const batch = toSampleBatch(raw, pixels);
    expect(batch.count).toBe(3);
    expect([...batch.features]).toEqual([...images].map((byte) => Math.fround(byte / 255)));
    expect(batch.labels).toEqual(Int32Array.of(7, 0, 9));
  });

  it('passes values already in the right dtype through without a copy, and converts the others', () => {
    const features = Float32Array.of(0.5, -2, 3.25, 4);
    const targets = Float32Array.of(1, 2);
    const batch = toSampleBatch(
      { count: 2, features, labels: targets },
      { featureDtype: 'float32', labelDtype: 'float32' },
    );
    expect(batch.features).toBe(features);
    expect(batch.labels).toBe(targets);
    const widened = toSampleBatch(raw, { featureDtype: 'int32', labelDtype: 'float32' });
    expect(widened.features).toEqual(Int32Array.from(images));
    expect(widened.labels).toEqual(Float32Array.of(7, 0, 9));
  });

  it('writes into views of the buffers it is given, the same values as new arrays', () => {
    const buffers = { features: new Float32Array(5 * 4).fill(-1), labels: new Int32Array(5).fill(-1) };
    const batch = toSampleBatch(raw, pixels, buffers);
    expect(batch.features.buffer).toBe(buffers.features.buffer);
    expect(batch.labels.buffer).toBe(buffers.labels.buffer);
    expect(batch.features).toEqual(toSampleBatch(raw, pixels).features);
    const next = toSampleBatch(
      { count: 1, features: images.subarray(0, 4), labels: labels.subarray(0, 1) },
      pixels,
      buffers,
    );
    expect(next.features.length).toBe(4);
  });

  it('refuses buffers too small for the batch', () => {
    expect(() =>
      toSampleBatch(raw, pixels, { features: new Float32Array(11), labels: new Int32Array(3) }),
    ).toThrow(callosumError('SHAPE_MISMATCH', 'holds 11 float32 values', 'needs 12 float32'));
  });
});

describe('gatherSamples', () => {
  const set: SampleSet = {
    count: 4,
    features: { values: Float32Array.from({ length: 8 }, (_, i) => i), sampleShape: [2] },
    labels: { values: Int32Array.of(10, 11, 12, 13), sampleShape: [] },
  };

  it('copies the samples at the indices, in that order, in the set dtypes', () => {
    const gathered = gatherSamples(set, Uint32Array.of(3, 0, 3));
    expect(gathered.count).toBe(3);
    expect(gathered.features).toEqual(Float32Array.of(6, 7, 0, 1, 6, 7));
    expect(gathered.labels).toEqual(Int32Array.of(13, 10, 13));
  });

  it('names an index outside the set', () => {
    expect(() => gatherSamples(set, [0, 4])).toThrow(
      callosumError('INVALID_ARGUMENT', 'indices[1] = 4', '0..3'),
    );
  });

  it('sizes buffers and slices batches per sample', () => {
    const buffers = batchBuffers(set, 3, { featureDtype: 'float32', labelDtype: 'int32' });
    expect([buffers.features.length, buffers.labels.length]).toEqual([6, 3]);
    const batch = toSampleBatch(gatherSamples(set, [0, 1, 2]), {
      featureDtype: 'float32',
      labelDtype: 'int32',
    });
    const slice = sliceBatch(batch, 1, 3);
    expect(slice.features).toEqual(Float32Array.of(2, 3, 4, 5));
    expect(slice.labels).toEqual(Int32Array.of(11, 12));
  });
});
