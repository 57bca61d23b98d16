/** Keras's EarlyStopping and ModelCheckpoint(save_best_only) as fit callbacks, and the check of what they monitor. */
import { CallosumError, didYouMean, ErrorCodes, shownWithType, unknownOption } from '@callosum/core';
import type { FitCallback, Logs } from './fit.js';

export interface MonitorOptions {
  /** The figure to watch (default val_loss). */
  readonly monitor?: string;
  /** 'min' or 'max'; 'auto' (default) maximises figures named like accuracy and minimises the rest. */
  readonly mode?: 'min' | 'max' | 'auto';
  /** Smaller changes than this do not count as improvements (default 0). */
  readonly minDelta?: number;
}

const MODES = ['min', 'max', 'auto'] as const;
const MONITOR_OPTION_NAMES = ['monitor', 'mode', 'minDelta'] as const;
/** Keras's names for these options, and other words for the modes (keyed in lower case). */
const KERAS_SPELLINGS: Readonly<Record<string, string>> = {
  min_delta: 'minDelta',
  filepath: 'dir',
};
const MODE_SPELLINGS: Readonly<Record<string, string>> = {
  minimum: 'min',
  minimise: 'min',
  minimize: 'min',
  maximum: 'max',
  maximise: 'max',
  maximize: 'max',
};

/**
 * Refuses, when the callback is made, options of `name` (earlyStopping, saveBestModel) that it does
 * not have or that are not what it takes: otherwise a misspelt `patince` or a `mode: 'maximum'` would
 * silently train with the defaults, and a missing `dir` would fail only after the first epoch.
 */
function requireMonitorOptions(name: string, options: unknown, own: readonly string[]): void {
  const invalid = (problem: string) => new CallosumError(ErrorCodes.INVALID_ARGUMENT, `${name}: ${problem}`);
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw invalid(`its options must be an object, got ${shownWithType(options)}`);
  }
  const known = [...MONITOR_OPTION_NAMES, ...own];
  // Keras's spelling of an option this callback has (earlyStopping has no `dir` for `filepath`).
  const spellings = Object.fromEntries(
    Object.entries(KERAS_SPELLINGS).filter(([, option]) => known.includes(option)),
  );
  const unknown = unknownOption(options, known, spellings);
  if (unknown !== undefined) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `${name} ${unknown}`);
  const { monitor, mode, minDelta } = options as Record<string, unknown>;
  if (monitor !== undefined && (typeof monitor !== 'string' || monitor === '')) {
    throw invalid(`monitor must be the name of a figure of the epoch logs, got ${shownWithType(monitor)}`);
  }
  if (mode !== undefined && !(MODES as readonly unknown[]).includes(mode)) {
    const given =
      typeof mode === 'string' ? `"${mode}"${didYouMean(mode, MODES, MODE_SPELLINGS)}` : shownWithType(mode);
    throw invalid(`mode must be "min", "max" or "auto", got ${given}`);
  }
  if (minDelta !== undefined && !(typeof minDelta === 'number' && Number.isFinite(minDelta))) {
    throw invalid(`minDelta must be a finite number, got ${shownWithType(minDelta)}`);
  }
}

/** Tracks whether each epoch's value of a figure improved on the best so far. */
function improvementTracker({ monitor = 'val_loss', mode = 'auto', minDelta = 0 }: MonitorOptions) {
  const maximise = mode === 'max' || (mode === 'auto' && /acc/.test(monitor));
  let best = maximise ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  return {
    monitor,
    /** Whether `logs` improve on the best so far (which they then become). */
    improves(logs: Logs): boolean {
      const value = logs[monitor];
      if (value === undefined) {
        throw new CallosumError(
          ErrorCodes.INVALID_ARGUMENT,
          `the monitored figure "${monitor}" is not in the epoch's logs (${Object.keys(logs).join(', ')})${missingFigureHint(monitor, Object.keys(logs))}`,
        );
      }
      const better = maximise ? value > best + Math.abs(minDelta) : value < best - Math.abs(minDelta);
      if (better) best = value;
      return better;
    },
  };
}

/**
 * Stops the run once the monitored figure has not improved for `patience` epochs in a row, as Keras's
 * EarlyStopping does (patience 0 or 1: at the first epoch without improvement).
 */
export function earlyStopping(options: MonitorOptions & { readonly patience?: number } = {}): FitCallback {
  requireMonitorOptions('earlyStopping', options, ['patience']);
  const { patience = 0 } = options;
  if (!Number.isSafeInteger(patience) || patience < 0) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `earlyStopping: patience must be an integer >= 0 (epochs without improvement), got ${shownWithType(patience)}`,
    );
  }
  const tracker = improvementTracker(options);
  let epochsWithout = 0;
  return {
    monitor: tracker.monitor,
    onEpochEnd(epoch, logs, run) {
      epochsWithout = tracker.improves(logs) ? 0 : epochsWithout + 1;
      if (epochsWithout > 0 && epochsWithout >= patience) {
        run.stop(
          `early stopping: ${tracker.monitor} has not improved for ${epochsWithout} epochs (epoch ${epoch + 1})`,
        );
      }
    },
  };
}

/** Saves the model into `dir` whenever the monitored figure improves (ModelCheckpoint, best only). */
export function saveBestModel(options: MonitorOptions & { readonly dir: string }): FitCallback {
  requireMonitorOptions('saveBestModel', options, ['dir']);
  if (typeof options.dir !== 'string' || options.dir === '') {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `saveBestModel: dir (the directory the best model is saved in) is required: a non-empty path, got ${shownWithType(options.dir)}`,
    );
  }
  const tracker = improvementTracker(options);
  return {
    monitor: tracker.monitor,
    async onEpochEnd(_epoch, logs, run) {
      if (tracker.improves(logs)) await run.saveModel(options.dir);
    },
  };
}

/** What fit calls on a callback; `monitor` is read, not called. */
const CALLBACK_METHODS = ['onBatchEnd', 'onEpochEnd'] as const;
const CALLBACK_KEYS: readonly string[] = [...CALLBACK_METHODS, 'monitor'];
/** Keras's and tfjs's names for them (keyed in lower case). */
const CALLBACK_SPELLINGS: Readonly<Record<string, string>> = {
  on_epoch_end: 'onEpochEnd',
  on_batch_end: 'onBatchEnd',
  on_train_batch_end: 'onBatchEnd',
  ontrainbatchend: 'onBatchEnd',
};

/**
 * Refuses, when fit starts and before anything trains, `callbacks` that are not a list of callbacks: a
 * callback that is no object, a method fit calls that is no function (`onEpochEnd: 5` would fail only
 * after the first epoch), or one fit does not call (a misspelt `onEpochEnds`, tfjs's `onTrainBegin`),
 * which would never be called. A callback may keep state in fields of any other name: only members
 * named like a hook (`on…`) that fit does not call are refused, and of a class's methods only those it
 * defines itself (not those it inherits).
 */
export function requireCallbacks(
  callbacks: unknown,
): asserts callbacks is readonly FitCallback[] | undefined {
  if (callbacks === undefined) return;
  if (!Array.isArray(callbacks)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `callbacks must be a list of callbacks (e.g. [earlyStopping()]), got ${shownWithType(callbacks)}`,
    );
  }
  for (const [index, callback] of callbacks.entries()) {
    if (typeof callback !== 'object' || callback === null) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `callbacks[${index}] must be an object with onBatchEnd or onEpochEnd, got ${shownWithType(callback)}`,
      );
    }
    const stray = memberNames(callback).find(
      (name) =>
        !CALLBACK_KEYS.includes(name) &&
        (/^on[A-Z_]/.test(name) ||
          (/^on/i.test(name) && didYouMean(name, CALLBACK_KEYS, CALLBACK_SPELLINGS) !== '')),
    );
    if (stray !== undefined) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `callbacks[${index}] has "${stray}"${didYouMean(stray, CALLBACK_KEYS, CALLBACK_SPELLINGS)}, which fit does not ` +
          `know: a callback has ${CALLBACK_METHODS.join(' and ')} (functions fit calls) and monitor (the figure it watches)`,
      );
    }
    for (const method of CALLBACK_METHODS) {
      const value: unknown = (callback as Record<string, unknown>)[method];
      if (value !== undefined && typeof value !== 'function') {
        throw new CallosumError(
          ErrorCodes.INVALID_ARGUMENT,
          `callbacks[${index}].${method} must be a function, got ${shownWithType(value)}`,
        );
      }
    }
  }
}

/**
 * The own enumerable keys of `value`, and the methods its own class defines: not those it inherits (a
 * subclass of tfjs's Callback inherits empty onTrainBegin and the like, which nobody meant to be called).
 */
function memberNames(value: object): string[] {
  const names = new Set(Object.keys(value));
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== null && prototype !== Object.prototype) {
    for (const name of Object.getOwnPropertyNames(prototype)) if (name !== 'constructor') names.add(name);
  }
  return [...names];
}

/**
 * Refuses a callback whose `monitor` is not among `names`, the figures every epoch's logs will have:
 * before training, a typo ("val_los") would only be found once the first epoch has trained.
 */
export function requireMonitoredFigures(callbacks: readonly FitCallback[], names: readonly string[]): void {
  for (const [index, { monitor }] of callbacks.entries()) {
    // Only a name is checked: a callback of a user's own may have a `monitor` of another kind.
    if (typeof monitor !== 'string' || names.includes(monitor)) continue;
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `callbacks[${index}] monitors "${monitor}"${didYouMean(monitor, names)}, which the epoch logs will not have: ` +
        `they have ${names.join(', ')}${missingFigureHint(monitor, names)}`,
    );
  }
}

/** Why `monitor` may be missing from the logs' `names`: Keras 2's name for accuracy, or no validation data. */
function missingFigureHint(monitor: string, names: readonly string[]): string {
  const tfjsName = monitor.replace(/accuracy$/, 'acc');
  if (tfjsName !== monitor && names.includes(tfjsName))
    return `; accuracy is "acc" here, as in tfjs: monitor "${tfjsName}"`;
  const validated = names.some((name) => name.startsWith('val_'));
  return monitor.startsWith('val_') && !validated ? '; val_ figures need validation data' : '';
}
