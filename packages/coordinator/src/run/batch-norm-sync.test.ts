import { ErrorCodes, initBackend, PROTOCOL_VERSION, tf } from '@callosum/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { admissionRefusal } from '../workers/admission.js';
import { type BatchNormReply, BatchNormSync } from './batch-norm-sync.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** dense 3 → BatchNormalization (3 channels) → dense 2 → BatchNormalization (2 channels). */
function twoLayerSync(): BatchNormSync {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 3 }),
      tf.layers.batchNormalization(),
      tf.layers.dense({ units: 2 }),
      tf.layers.batchNormalization(),
    ],
  });
  const sync = BatchNormSync.of(model);
  model.dispose();
  if (sync === undefined) throw new Error('the model has BatchNormalization layers');
  return sync;
}

const reply = (values: number[], elements?: number): BatchNormReply => ({
  values: Float32Array.from(values),
  elements,
  timings: { decodeMs: 0, computeMs: 0 },
});

describe('BatchNormSync', () => {
  it('is not needed for a model without BatchNormalization', () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3 })] });
    expect(BatchNormSync.of(model)).toBeUndefined();
    model.dispose();
  });

  it('runs the moments of each layer in order, then the adjoints in reverse', () => {
    const sync = twoLayerSync();
    expect(sync.passes).toBe(4);
    expect([0, 1, 2, 3].map((pass) => sync.passOf(pass))).toEqual([
      { kind: 'moments', layer: 0 },
      { kind: 'moments', layer: 1 },
      { kind: 'adjoint', layer: 1 },
      { kind: 'adjoint', layer: 0 },
    ]);
  });

  it('refuses a result of the wrong length, moments over the wrong elements, non-finite values, an unknown pass', () => {
    const sync = twoLayerSync();
    expect(sync.problem(0, Float32Array.of(1, 2, 3, 4, 5, 6), 8, 8)).toBeUndefined();
    expect(sync.problem(0, Float32Array.of(1, 2, 3, 4), 8, 8)).toEqual({
      code: ErrorCodes.MALFORMED_MESSAGE,
      reason: '4 values for BatchNormalization layer 0, which needs 6',
    });
    // A dense layer's input has one position per sample: 8 samples, 8 elements per channel.
    for (const elements of [undefined, 0, 16, 4]) {
      expect(sync.problem(1, Float32Array.of(1, 2, 3, 4), elements, 8)?.reason).toMatch(
        /moments of BatchNormalization layer 1 over .* elements per channel, for 8 samples of 1 positions each/,
      );
    }
    expect(sync.problem(2, Float32Array.of(1, Number.NaN, 3, 4), undefined, 8)).toEqual({
      code: ErrorCodes.NON_FINITE,
      reason: 'non-finite adjoint of BatchNormalization layer 1',
    });
    expect(sync.problem(4, Float32Array.of(1, 2, 3, 4), undefined, 8)?.reason).toMatch(
      /pass 4 of a step that has 4/,
    );
  });

  it('combines the shards of every pass, in shard order, into what the compute requests carry', async () => {
    const sync = twoLayerSync();
    const asked: { pass: number; statistics: number[]; adjoints: number[] }[] = [];
    const synced = await sync.synchronise(6, async (pass, known) => {
      asked.push({ pass, statistics: [...known.statistics], adjoints: [...known.adjoints] });
      switch (pass) {
        // Layer 0, two shards: means 1 and 3 of 2 and 4 elements (sums of squared deviations 2 and 4).
        case 0:
          return [reply([1, 0, 0, 2, 0, 0], 2), reply([3, 0, 0, 4, 0, 0], 4)];
        case 1:
          return [reply([0, 5, 1, 1], 2), reply([0, 5, 1, 1], 4)];
        default:
          return [
            reply(pass === 2 ? [1, 2, 3, 4] : [1, 1, 1, 1, 1, 1]),
            reply(pass === 2 ? [1, 2, 3, 4] : [2, 2, 2, 2, 2, 2]),
          ];
      }
    });
    // Mean of [1,1,3,3,3,3] is 7/3; squared deviations 2 + 4 + the spread between the shards' means.
    const mean = 7 / 3;
    const squares = 2 + 4 + ((3 - 1) ** 2 * 2 * 4) / 6;
    expect(synced.statistics[0]).toBe(Math.fround(mean));
    expect(synced.statistics[3]).toBe(Math.fround(squares / 6));
    // Layer 1: equal means; the sums of squared deviations add up over 6 elements.
    expect(Array.from(synced.statistics.subarray(6))).toEqual([0, 5, Math.fround(2 / 6), Math.fround(2 / 6)]);
    // Adjoints: layer 1 in pass 2, layer 0 in pass 3; each pass is told what the earlier ones found.
    expect(Array.from(synced.adjoints)).toEqual([3, 3, 3, 3, 3, 3, 2, 4, 6, 8]);
    expect(asked[1]?.statistics.slice(0, 6)).toEqual(Array.from(synced.statistics.subarray(0, 6)));
    expect(asked[3]?.adjoints.slice(6)).toEqual([2, 4, 6, 8]);
    expect(synced.samples).toBe(6);
  });
});

describe('admission of a run that synchronises BatchNormalization', () => {
  const hello = (minor: number) => ({
    type: 'hello' as const,
    protocol: { major: PROTOCOL_VERSION.major, minor },
    workerName: 'w',
    backend: 'wasm',
    pid: 1,
    hostname: 'h',
  });
  const run = (syncBatchNorm: boolean) => ({
    label: 'w (127.0.0.1:1)',
    topology: 'star' as const,
    healthyWorkers: 0,
    maxWorkers: 4,
    task: { name: 'mnist/cnn', fingerprint: undefined },
    wireDtype: 'float32' as const,
    syncBatchNorm,
    peerTls: false,
    cooldown: undefined,
  });

  it('refuses a worker older than 1.7, naming what it lacks; another run takes it', () => {
    expect(admissionRefusal(hello(6), run(true))?.reason).toBe(
      'protocol 1.7 or later needed (synchronised BatchNormalization (--batch-norm sync)); worker speaks 1.6',
    );
    expect(admissionRefusal(hello(6), run(false))).toBeUndefined();
    expect(admissionRefusal(hello(7), run(true))).toBeUndefined();
  });
});
