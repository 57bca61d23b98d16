import { describe, expect, it } from 'vitest';
import type { FitRun } from './fit.js';
import { earlyStopping, requireMonitoredFigures, saveBestModel } from './fit-callbacks.js';

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

describe('requireMonitoredFigures, before training', () => {
  const logs = ['loss', 'acc', 'val_loss', 'val_acc'];

  it('passes callbacks that monitor a figure of the logs, or nothing', () => {
    expect(() =>
      requireMonitoredFigures([{}, earlyStopping(), saveBestModel({ monitor: 'acc', dir: 'best' })], logs),
    ).not.toThrow();
  });

  it("leaves a callback's own monitor of another kind alone (a method, a number)", () => {
    class Watcher {
      monitor() {}
    }
    expect(() =>
      requireMonitoredFigures([new Watcher() as never, { monitor: 5 } as never], logs),
    ).not.toThrow();
  });

  it('names the callback, the figure meant and the figures there are', () => {
    expect(() => requireMonitoredFigures([{}, earlyStopping({ monitor: 'val_lss' })], logs)).toThrow(
      'callbacks[1] monitors "val_lss" (did you mean "val_loss"?), which the epoch logs will not have: they have loss, acc, val_loss, val_acc',
    );
    expect(() =>
      requireMonitoredFigures([saveBestModel({ monitor: 'val_accuracy', dir: 'best' })], logs),
    ).toThrow(
      /^callbacks\[0\] monitors "val_accuracy", .*; accuracy is "acc" here, as in tfjs: monitor "val_acc"$/,
    );
  });
});
