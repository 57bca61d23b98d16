import { z } from 'zod';
import type { ModelSpec } from '../models/spec.js';
import type { AnyOptimizerSpec } from '../optim/registry.js';
import type { LearningRateSchedule } from '../optim/schedules.js';
import { tfjsOptimizerRefusal } from '../optim/tfjs-optimizer.js';
import {
  integerOption,
  namedSpecOption,
  nameOrSpecOption,
  numberOption,
  parseOptions,
  positiveNumberOption,
} from '../options/schema.js';

/**
 * What defines a training run, wherever it runs (one process or many): the same config and seed give
 * the same sequence of global batches and, on the same backend, the same weights.
 */
export interface TrainingConfig {
  readonly model: ModelSpec;
  readonly epochs: number;
  /** Global batch size: the samples of one optimizer step, however many workers share them. */
  readonly batchSize: number;
  readonly optimizer: AnyOptimizerSpec;
  readonly learningRate: number;
  /** A cosine schedule with `totalSteps: 0` decays over the whole run, however long it turns out. */
  readonly schedule: LearningRateSchedule;
  /** Seeds weight initialisation, the per-epoch shuffle and augmentation. */
  readonly seed: number;
  /** Random translation of training images by up to this many pixels (0: no augmentation). */
  readonly maxShift: number;
  /** Stop after this many steps even if epochs remain. */
  readonly maxSteps?: number | undefined;
  /**
   * Deterministic reduction: compute gradients per micro-batch of this many samples and add them along
   * one fixed tree, so the weights are the same at any worker count (micro-batch-tree.ts). Unset: a
   * shard's gradient is computed in one piece and shards are added in shard order in float64.
   */
  readonly microBatchSize?: number | undefined;
  /**
   * How BatchNormalization layers normalise a step whose shards are computed apart (on workers; one
   * process always normalises the whole batch). `local` or unset: each shard with its own statistics,
   * as PyTorch DDP does. `sync`: with the whole batch's (SyncBatchNorm), at the cost of extra passes
   * over the shards every step. Part of the config because it changes what the run computes: a resumed
   * run keeps it.
   */
  readonly batchNorm?: BatchNormMode | undefined;
}

/**
 * The training options a caller gives (trainLocal's, fit's, a coordinator's `training`): any of the
 * config's, with the optimizer also by name alone ('adam'), as a task's optimizer and --optimizer are.
 */
export type TrainingOverrides = Partial<Omit<TrainingConfig, 'optimizer'>> & {
  readonly optimizer?: AnyOptimizerSpec | string | undefined;
};

/** The values of TrainingConfig's `batchNorm`. */
export const BATCH_NORM_MODES = ['sync', 'local'] as const;
export type BatchNormMode = (typeof BATCH_NORM_MODES)[number];

/**
 * Defaults chosen so the reference cnn passes 98.5% test accuracy on the real MNIST in a few minutes on
 * a 2-core CPU: measured 98.73% for these settings in one process (98.29% for plain Adam at 1e-3, batch
 * 64, no schedule or augmentation, which tfjs's own model.fit also reaches). A one-pixel random shift
 * and cosine decay are what close the gap; see docs/benchmarks.md.
 */
export const DEFAULT_TRAINING_CONFIG: TrainingConfig = {
  model: { name: 'cnn' },
  epochs: 2,
  batchSize: 128,
  optimizer: { name: 'adam' },
  learningRate: 0.002,
  schedule: { kind: 'cosine', totalSteps: 0 },
  seed: 1,
  maxShift: 1,
};

const MAX_UINT32 = 2 ** 32 - 1;
const defaults = DEFAULT_TRAINING_CONFIG;

/** Each option on its own; the micro-batch size is checked against the batch size in `checked`. */
const fields = {
  model: namedSpecOption<ModelSpec>('name', 'a model spec {name, options?}'),
  epochs: integerOption(1),
  batchSize: integerOption(1),
  // By name too ('adam'), as a task's optimizer and --optimizer are given.
  optimizer: nameOrSpecOption<AnyOptimizerSpec>(
    'name',
    "an optimizer name ('adam') or spec {name, ...}",
    (value) => tfjsOptimizerRefusal(value, 'run options'),
  ),
  learningRate: positiveNumberOption(),
  schedule: namedSpecOption<LearningRateSchedule>('kind', 'a schedule {kind, ...}'),
  seed: integerOption(0, MAX_UINT32),
  maxShift: integerOption(0),
  maxSteps: integerOption(1).optional(),
  microBatchSize: numberOption(() => true, 'an integer').optional(),
  batchNorm: z.enum(BATCH_NORM_MODES).optional(),
};

/** The names of the training options (a TrainingConfig's fields). */
export const TRAINING_OPTION_NAMES = Object.keys(fields) as readonly (keyof TrainingConfig & string)[];

/** Adds the checks across fields: the micro-batch size must fit in the global batch. */
function checked<
  T extends z.ZodType<{ readonly batchSize: number; readonly microBatchSize?: number | undefined }>,
>(schema: T): T {
  return schema.check((context) => {
    const { microBatchSize, batchSize } = context.value;
    if (!isIntegerIn(microBatchSize ?? 1, 1, batchSize)) {
      context.issues.push({
        code: 'custom',
        input: microBatchSize,
        path: ['microBatchSize'],
        message: `(at most the global batch size) must be an integer in 1..${batchSize}, got ${microBatchSize}`,
      });
    }
  });
}

/**
 * A complete training config, as a checkpoint stores it. Unknown keys are dropped. The model, optimizer
 * and schedule are only checked for their name or kind here: their registries check the rest.
 */
export const trainingConfigSchema = checked(z.object(fields));

/**
 * The training options: each defaults to DEFAULT_TRAINING_CONFIG (undefined counts as not set).
 * Unknown keys are dropped, so an options object may carry other settings too (trainLocal's backend,
 * data directory, ...).
 */
export const trainingOptionsSchema = checked(
  z.object({
    ...fields,
    model: fields.model.default(defaults.model),
    epochs: fields.epochs.default(defaults.epochs),
    batchSize: fields.batchSize.default(defaults.batchSize),
    optimizer: fields.optimizer.default(defaults.optimizer),
    learningRate: fields.learningRate.default(defaults.learningRate),
    schedule: fields.schedule.default(defaults.schedule),
    seed: fields.seed.default(defaults.seed),
    maxShift: fields.maxShift.default(defaults.maxShift),
  }),
);

/** Any subset of the training options, as trainingOptionsSchema reads them. */
export type TrainingOptions = z.input<typeof trainingOptionsSchema>;

/**
 * The defaults, overridden by every option that is set (undefined counts as not set); throws
 * INVALID_ARGUMENT naming the first invalid or contradictory option.
 */
export function resolveTrainingConfig(options: TrainingOptions): TrainingConfig {
  return parseOptions(trainingOptionsSchema, options, 'training config');
}

function isIntegerIn(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}
