import { describe, expect, it } from 'vitest';
import type { FitRun } from './fit.js';
import { earlyStopping } from './fit-callbacks.js';

const run: FitRun = { stop: () => {}, saveModel: async () => {} };

describe('earlyStopping, monitoring a figure the epoch does not have', () => {
  it("points Keras 2's accuracy names at tfjs's acc", async () => {
    const callback = earlyStopping({ monitor: 'val_accuracy' });
    await expect(
      (async () => callback.onEpochEnd?.(0, { loss: 1, acc: 0.5, val_loss: 1.1, val_acc: 0.4 }, run))(),
    ).rejects.toThrow(
      /"val_accuracy" is not in the epoch's logs \(loss, acc, val_loss, val_acc\); accuracy is "acc" here, as in tfjs: monitor "val_acc"$/,
    );
  });

  it('says that val_ figures need validation data when there is none', async () => {
    const callback = earlyStopping({ monitor: 'val_loss' });
    await expect((async () => callback.onEpochEnd?.(0, { loss: 1 }, run))()).rejects.toThrow(
      /"val_loss" is not in the epoch's logs \(loss\); val_ figures need validation data$/,
    );
  });
});
