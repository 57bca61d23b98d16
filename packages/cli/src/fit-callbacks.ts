/** Keras's EarlyStopping and ModelCheckpoint(save_best_only) as fit callbacks, and the check of what they monitor. */
import { CallosumError, didYouMean, ErrorCodes } from '@callosum/core';
import type { FitCallback, Logs } from './fit.js';

export interface MonitorOptions {
  /** The figure to watch (default val_loss). */
  readonly monitor?: string;
  /** 'min' or 'max'; 'auto' (default) maximises figures named like accuracy and minimises the rest. */
  readonly mode?: 'min' | 'max' | 'auto';
  /** Smaller changes than this do not count as improvements (default 0). */
  readonly minDelta?: number;
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
  const tracker = improvementTracker(options);
  const patience = options.patience ?? 0;
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
  const tracker = improvementTracker(options);
  return {
    monitor: tracker.monitor,
    async onEpochEnd(_epoch, logs, run) {
      if (tracker.improves(logs)) await run.saveModel(options.dir);
    },
  };
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
