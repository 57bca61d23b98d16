/**
 * How a run turns the gradients of a step's shards into one mean gradient, chosen once per run from its
 * config (`reductionFor`). The coordinator plans each step's shards with it and reduces what the workers
 * return; a worker computes each shard with it; trainLocal does both in one process. Keeping the choice
 * in one place is what keeps those three computing the same thing.
 */
import type { SampleBatch } from '../data/samples.js';
import { evenShardRanges, type ShardRange } from '../data/shards.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import type { TaskModel } from '../task/task.js';
import type { BatchTotals, GradientResult } from './batch.js';
import { addTotals } from './evaluate.js';
import { computeGradients } from './gradients.js';
import {
  computeTreeGradients,
  microBatchCount,
  nodeKey,
  nodeSamples,
  shardNode,
  TreeGradientSum,
  TreeSummation,
  treeRoot,
  treeShards,
} from './micro-batch-tree.js';
import { OrderedGradientSum, type ReducedStep } from './reduce.js';
import { addSimd } from './vector-simd.js';

/** The run settings that choose a reduction. A worker receives them once, in the welcome. */
export interface ReductionSettings {
  /** Set: the micro-batch tree with micro-batches of this many samples. Unset: the ordered shard sum. */
  readonly microBatchSize?: number | undefined;
}

/** The shards of one step's global batch of `samples` samples. */
export interface StepPlan {
  readonly samples: number;
  /** In shard order: shard `i` is `shards[i]`. */
  readonly shards: readonly ShardRange[];
}

/**
 * The gradient of the summed loss over one shard's samples, computed as a reduction adds it; written
 * into `into` when given. Without `into` the result may live in scratch memory that the next call reuses.
 */
export type ComputeShard = (taskModel: TaskModel, batch: SampleBatch, into?: Float32Array) => GradientResult;

export interface Reduction {
  /** Names the reduction in logs and errors. */
  readonly name: string;
  /** What a worker needs to compute shards for this reduction; sent once, in the welcome. */
  readonly settings: ReductionSettings;
  /**
   * Whether the weights are the same to the last bit at any worker count. Workers on different
   * backends round differently and break that promise, which is worth a warning.
   */
  readonly identicalAtAnyWorkerCount: boolean;
  /** The shards of a step of `samples` samples for `parts` worker slots. */
  plan(samples: number, parts: number): StepPlan;
  readonly computeShard: ComputeShard;
  /**
   * The gradient sum of one shard of `plan.samples` samples whose pieces (the shards of
   * `plan(samples, lanes)`, e.g. one lane per thread) were computed apart with computeShard, added in
   * one fixed order into `into`; `results[i]` is `plan.shards[i]`'s. Micro-batches: the pieces are tree
   * nodes added along the tree, bit-identical to computeShard over the whole shard. Ordered: the pieces
   * added in order in float32, the same bits for the same lane count (the last bits differ from one
   * piece, as they do between worker counts).
   */
  combinePieces(plan: StepPlan, results: readonly GradientResult[], into: Float32Array): GradientResult;
  /** Starts reducing a step planned by `plan`, forgetting everything added before. */
  begin(plan: StepPlan): void;
  /**
   * Adds shard `index`'s result, which must have been checked with assertFiniteShard. Its gradient
   * buffer must stay untouched until `finish`.
   */
  add(index: number, result: GradientResult): void;
  /** The mean over every shard of the step; its gradient is this reduction's buffer, valid until `begin`. */
  finish(): ReducedStep;
}

/** The one place that chooses a run's reduction. */
export function reductionFor(settings: ReductionSettings, parameterCount: number): Reduction {
  const { microBatchSize } = settings;
  return microBatchSize === undefined
    ? new OrderedShardReduction(parameterCount)
    : new MicroBatchTreeReduction(microBatchSize, parameterCount);
}

/** Pieces are combined only when every one of them has its result. */
function requirePieces(plan: StepPlan, results: readonly GradientResult[]): void {
  if (plan.samples < 1 || results.length !== plan.shards.length) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `${results.length} results for the ${plan.shards.length} pieces of a shard of ${plan.samples} samples`,
    );
  }
}

/**
 * The reducing half both reductions share. Their sum is allocated by the first `begin` (in a subclass),
 * so a worker, which computes shards but never reduces them, never allocates it.
 */
abstract class LazySum<
  S extends { add(index: number, result: GradientResult): void; reduce(): ReducedStep },
> {
  protected sum: S | undefined;

  add(index: number, result: GradientResult): void {
    this.started().add(index, result);
  }

  finish(): ReducedStep {
    return this.started().reduce();
  }

  private started(): S {
    if (this.sum === undefined) {
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'a shard was added before the step began');
    }
    return this.sum;
  }
}

/**
 * One even shard per worker slot, each computed in one piece and added in shard order in float64
 * (reduce.ts). Shard sizes depend on the worker count, so the last bits of the weights do too.
 */
class OrderedShardReduction extends LazySum<OrderedGradientSum> implements Reduction {
  readonly name = 'the ordered shard sum';
  readonly settings: ReductionSettings = {};
  readonly identicalAtAnyWorkerCount = false;

  constructor(private readonly parameterCount: number) {
    super();
  }

  plan(samples: number, parts: number): StepPlan {
    return { samples, shards: evenShardRanges(samples, parts) };
  }

  readonly computeShard: ComputeShard = (taskModel, batch, into) => computeGradients(taskModel, batch, into);

  combinePieces(plan: StepPlan, results: readonly GradientResult[], into: Float32Array): GradientResult {
    requirePieces(plan, results);
    const [first, ...rest] = results as [GradientResult, ...GradientResult[]];
    let sum = first.gradient;
    let totals: BatchTotals = first;
    for (const result of rest) {
      addSimd(into, sum, result.gradient);
      sum = into;
      totals = addTotals(totals, result);
    }
    if (sum !== into) into.set(sum);
    return { ...totals, gradient: into };
  }

  begin(plan: StepPlan): void {
    this.sum ??= new OrderedGradientSum(this.parameterCount);
    this.sum.begin(plan.shards.length);
  }
}

/**
 * Micro-batches of a fixed size added along one fixed tree (micro-batch-tree.ts): each worker slot gets
 * its even share of micro-batches as the tree nodes covering it, so the weights are the same at any
 * worker count.
 */
class MicroBatchTreeReduction extends LazySum<TreeGradientSum> implements Reduction {
  readonly name = 'micro-batches';
  readonly settings: ReductionSettings;
  readonly identicalAtAnyWorkerCount = true;
  // Allocated on first use: a worker only computes, the coordinator only reduces.
  private summation: TreeSummation | undefined;

  constructor(
    private readonly microBatchSize: number,
    private readonly parameterCount: number,
  ) {
    super();
    this.settings = { microBatchSize };
  }

  plan(samples: number, parts: number): StepPlan {
    const shards = treeShards(microBatchCount(samples, this.microBatchSize), parts).map(({ node, part }) => ({
      ...nodeSamples(node, this.microBatchSize, samples),
      part,
    }));
    return { samples, shards };
  }

  readonly computeShard: ComputeShard = (taskModel, batch, into) =>
    computeTreeGradients(taskModel, batch, this.microBatchSize, this.treeSummation(), into);

  combinePieces(plan: StepPlan, results: readonly GradientResult[], into: Float32Array): GradientResult {
    requirePieces(plan, results);
    const byNode = new Map(
      plan.shards.map((shard, index) => [nodeKey(shardNode(shard, this.microBatchSize)), results[index]]),
    );
    const root = treeRoot(microBatchCount(plan.samples, this.microBatchSize));
    const sum = this.treeSummation().sum(root, (node) => byNode.get(nodeKey(node)), into);
    // One piece covering the whole shard is its own sum, still in that piece's buffer.
    if (sum.gradient !== into) into.set(sum.gradient);
    return { ...sum, gradient: into };
  }

  private treeSummation(): TreeSummation {
    this.summation ??= new TreeSummation(this.parameterCount);
    return this.summation;
  }

  begin(plan: StepPlan): void {
    this.sum ??= new TreeGradientSum(this.parameterCount);
    this.sum.begin(
      microBatchCount(plan.samples, this.microBatchSize),
      plan.shards.map((shard) => shardNode(shard, this.microBatchSize)),
    );
  }
}
