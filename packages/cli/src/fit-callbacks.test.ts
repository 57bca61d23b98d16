import { describe, expect, it } from 'vitest';
import type { FitRun } from './fit.js';
import { earlyStopping, requireCallbacks, requireMonitoredFigures, saveBestModel } from './fit-callbacks.js';

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

describe('earlyStopping and saveBestModel, refusing options when made', () => {
  it('refuses an option they do not have, suggesting the one meant (Keras spellings too)', () => {
    expect(() => earlyStopping({ patince: 3 } as never)).toThrow(
      'earlyStopping has no option "patince" (did you mean "patience"?); options: monitor, mode, minDelta, patience',
    );
    expect(() => earlyStopping({ min_delta: 0.1 } as never)).toThrow(
      'earlyStopping has no option "min_delta" (did you mean "minDelta"?)',
    );
    // earlyStopping has no `dir`: Keras's `filepath` is not said to stand for it there.
    expect(() => earlyStopping({ filepath: 'best' } as never)).toThrow(
      /^earlyStopping has no option "filepath"; options: /,
    );
    expect(() => saveBestModel({ filepath: 'best' } as never)).toThrow(
      'saveBestModel has no option "filepath" (did you mean "dir"?); options: monitor, mode, minDelta, dir',
    );
  });

  it('refuses a mode other than min, max and auto, which was taken as min', () => {
    expect(() => earlyStopping({ mode: 'maximum' as never })).toThrow(
      'earlyStopping: mode must be "min", "max" or "auto", got "maximum" (did you mean "max"?)',
    );
    expect(() => saveBestModel({ dir: 'best', mode: 'MAX' as never })).toThrow(
      'saveBestModel: mode must be "min", "max" or "auto", got "MAX" (did you mean "max"?)',
    );
    expect(() => earlyStopping({ mode: 1 as never })).toThrow('got 1');
    for (const mode of ['min', 'max', 'auto'] as const) expect(() => earlyStopping({ mode })).not.toThrow();
  });

  it('refuses a patience that is no integer >= 0 (NaN never stopped), a minDelta or monitor of another kind', () => {
    for (const [patience, shown] of [
      [-1, '-1'],
      [Number.NaN, 'NaN'],
      [1.5, '1.5'],
      ['3', '"3" (a string)'],
    ] as const) {
      expect(() => earlyStopping({ patience: patience as number })).toThrow(
        `earlyStopping: patience must be an integer >= 0 (epochs without improvement), got ${shown}`,
      );
    }
    expect(() => earlyStopping({ patience: 0 })).not.toThrow();
    expect(() => earlyStopping({ minDelta: Number.NaN })).toThrow(
      'earlyStopping: minDelta must be a finite number, got NaN',
    );
    expect(() => saveBestModel({ dir: 'best', monitor: '' })).toThrow(
      'saveBestModel: monitor must be the name of a figure of the epoch logs, got ""',
    );
    expect(() => earlyStopping('val_loss' as never)).toThrow(
      'earlyStopping: its options must be an object, got "val_loss" (a string)',
    );
  });

  it('refuses saveBestModel without a dir, which failed only after the first epoch', () => {
    for (const options of [{}, { dir: '' }, { dir: 5 }]) {
      expect(() => saveBestModel(options as never)).toThrow(
        /^saveBestModel: dir \(the directory the best model is saved in\) is required: a non-empty path, got /,
      );
    }
    expect(() => saveBestModel(undefined as never)).toThrow(
      'saveBestModel: its options must be an object, got undefined',
    );
  });
});

describe('requireCallbacks, when fit starts', () => {
  it("passes fit's own callbacks, plain objects with the methods fit calls, and classes with state of their own", () => {
    class Counter {
      epochs = 0;
      best = Number.POSITIVE_INFINITY;
      onEpochEnd() {
        this.epochs += this.step();
      }
      step() {
        return 1;
      }
    }
    expect(() =>
      requireCallbacks([
        {},
        { onBatchEnd: () => {}, onEpochEnd: undefined, monitor: 'loss' },
        earlyStopping(),
        saveBestModel({ dir: 'best' }),
        new Counter(),
      ]),
    ).not.toThrow();
    expect(() => requireCallbacks(undefined)).not.toThrow();
  });

  it('refuses a method that is no function, which failed only after the first epoch', () => {
    expect(() => requireCallbacks([{}, { onEpochEnd: 5 }])).toThrow(
      'callbacks[1].onEpochEnd must be a function, got 5',
    );
    expect(() => requireCallbacks([{ onBatchEnd: 'log' }])).toThrow(
      'callbacks[0].onBatchEnd must be a function, got "log" (a string)',
    );
  });

  it("refuses a method fit does not call, which was never called: misspelt, Keras's, tfjs's, or in a class", () => {
    const known =
      'which fit does not know: a callback has onBatchEnd and onEpochEnd (functions fit calls) and monitor (the figure it watches)';
    expect(() => requireCallbacks([{ onEpochEnds: () => {} }])).toThrow(
      `callbacks[0] has "onEpochEnds" (did you mean "onEpochEnd"?), ${known}`,
    );
    expect(() => requireCallbacks([{ on_epoch_end: () => {} }])).toThrow(
      `callbacks[0] has "on_epoch_end" (did you mean "onEpochEnd"?), ${known}`,
    );
    expect(() => requireCallbacks([{ onTrainBegin: () => {} }])).toThrow(
      `callbacks[0] has "onTrainBegin", ${known}`,
    );
    class Misspelt {
      best = 0;
      onEpochEnds() {}
    }
    expect(() => requireCallbacks([{}, new Misspelt()])).toThrow(
      `callbacks[1] has "onEpochEnds" (did you mean "onEpochEnd"?), ${known}`,
    );
  });

  it("keeps state of any name, and ignores the hooks a class inherits (tfjs's Callback has empty ones)", () => {
    class TfjsLikeBase {
      onTrainBegin() {}
      onEpochBegin() {}
    }
    class Logger extends TfjsLikeBase {
      private _monitor = 'val_loss';
      best = Number.POSITIVE_INFINITY;
      get watched() {
        return this._monitor;
      }
      onEpochEnd() {}
    }
    expect(() => requireCallbacks([new Logger(), { best: 0, patience: 3, onEpochEnd() {} }])).not.toThrow();
    class OwnHook extends TfjsLikeBase {
      override onTrainBegin() {}
    }
    expect(() => requireCallbacks([new OwnHook()])).toThrow('callbacks[0] has "onTrainBegin"');
  });

  it('refuses callbacks that are no list, and a callback that is no object', () => {
    expect(() => requireCallbacks(earlyStopping())).toThrow(
      /^callbacks must be a list of callbacks \(e\.g\. \[earlyStopping\(\)\]\), got \{"monitor":"val_loss"\} \(an object\)$/,
    );
    expect(() => requireCallbacks([{}, () => {}])).toThrow(
      'callbacks[1] must be an object with onBatchEnd or onEpochEnd, got',
    );
  });
});
