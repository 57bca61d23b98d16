/**
 * The ring topology's reduction, with no transport: the arithmetic one worker does to turn its own
 * shards' gradients into the step's mean gradient, exchanging chunks with its peers.
 *
 * The parameters are cut into one chunk per rank. Reduce-scatter: every rank sends each other rank the
 * rows of its shards' gradients that fall in that rank's chunk; the chunk's owner adds every shard of the
 * step, in the run's reduction (the same ordered sum or micro-batch tree the coordinator uses in the
 * star), and scales by the global count. All-gather: every owner sends its mean chunk to every other
 * rank. Both reductions work element by element, so a chunk reduced alone has exactly the bits of the
 * same elements reduced as a whole vector: the weights are bit-identical to the star's, and every
 * replica's are identical to every other's, whatever order the messages arrive in.
 *
 * Each rank sends (ranks - 1) / ranks of its shards' gradients and of the mean, like a ring all-reduce,
 * but straight to the owner instead of around the ring, in two hops instead of 2 × (ranks - 1): summed
 * hop by hop around a ring, each chunk would be added in a different order and the tree's order lost.
 */
import { evenShardRanges, type ShardRange } from '../data/shards.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import type { GradientResult } from './batch.js';
import { EMPTY_TOTALS } from './evaluate.js';
import { assertFiniteShard, type ReducedStep } from './reduce.js';
import { type Reduction, type ReductionSettings, reductionFor } from './reduction.js';

/** One shard of a ring step: its samples, and the rank that holds its gradient. */
export interface RingShard {
  readonly start: number;
  readonly end: number;
  readonly holder: number;
}

/** One step's reduction among `ranks` workers. */
export interface RingPlan {
  readonly samples: number;
  /** In shard order. */
  readonly shards: readonly RingShard[];
  readonly ranks: number;
}

/** The rows one rank sends another: its shards' gradients over the receiver's chunk. */
export interface ScatterRows {
  /** Shard indices, ascending. */
  readonly shards: readonly number[];
  /** Row i is shards[i]'s gradient over the chunk: [shards.length, chunk length]. */
  readonly rows: Float32Array;
}

/** The parameters [start, end) that rank `rank` of `ranks` owns. */
export function ringChunk(parameterCount: number, ranks: number, rank: number): ShardRange {
  const chunk = evenShardRanges(parameterCount, ranks)[rank];
  if (chunk === undefined) {
    throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `rank ${rank} is outside a ring of ${ranks}`);
  }
  return chunk;
}

/**
 * One worker's side of ring reductions. One instance serves a whole run (`begin` starts each step):
 * the mean buffer and the chunk's reduction are kept, as allocating megabytes per step costs more
 * than the arithmetic.
 */
export class RingExchange {
  private readonly mean: Float32Array;
  private chunkReduction: { length: number; reduction: Reduction } | undefined;
  private plan: RingPlan = { samples: 0, shards: [], ranks: 0 };
  private rank = 0;
  private own: ShardRange = { start: 0, end: 0, part: 0 };
  private held: ReadonlyMap<number, GradientResult> = new Map();
  /** Ranks whose rows for this rank's chunk have been added. */
  private scattered = new Set<number>();
  private gathered = new Set<number>();
  private reduced = false;

  constructor(
    private readonly settings: ReductionSettings,
    readonly parameterCount: number,
  ) {
    this.mean = new Float32Array(parameterCount);
  }

  /**
   * Starts a step's reduction as rank `rank` of `plan.ranks`, holding the gradients `held` (shard index
   * → its result, the whole parameter vector) of exactly the shards the plan says this rank holds.
   * They must stay untouched until the step is complete.
   */
  begin(plan: RingPlan, rank: number, held: ReadonlyMap<number, GradientResult>): void {
    requirePlan(plan, rank);
    const mine = plan.shards.flatMap((shard, index) => (shard.holder === rank ? [index] : []));
    const missing = mine.find((index) => !held.has(index));
    if (missing !== undefined || held.size !== mine.length) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        missing === undefined
          ? `rank ${rank} holds ${held.size} shards, the plan gives it ${mine.length}`
          : `rank ${rank} does not hold shard ${missing}`,
      );
    }
    this.plan = plan;
    this.rank = rank;
    this.held = held;
    this.own = ringChunk(this.parameterCount, plan.ranks, rank);
    this.scattered = new Set();
    this.gathered = new Set();
    this.reduced = false;
    const length = this.own.end - this.own.start;
    if (this.chunkReduction?.length !== length) {
      this.chunkReduction = { length, reduction: reductionFor(this.settings, length) };
    }
    this.chunkReduction.reduction.begin({
      samples: plan.samples,
      shards: plan.shards.map(({ start, end }, part) => ({ start, end, part })),
    });
    const shards = this.shardsHeldBy(rank);
    this.addRows(rank, shards, (row) =>
      (held.get(shards[row] as number) as GradientResult).gradient.subarray(this.own.start, this.own.end),
    );
  }

  /** What this rank sends rank `owner`: its shards' rows in `owner`'s chunk (a copy). */
  scatterTo(owner: number): ScatterRows {
    const { start, end } = ringChunk(this.parameterCount, this.plan.ranks, owner);
    const shards = this.shardsHeldBy(this.rank);
    const rows = new Float32Array(shards.length * (end - start));
    shards.forEach((shard, row) => {
      rows.set((this.held.get(shard) as GradientResult).gradient.subarray(start, end), row * (end - start));
    });
    return { shards, rows };
  }

  /**
   * Rank `from`'s rows for this rank's chunk. Untrusted: the shards must be exactly those the plan says
   * `from` holds, in order, the rows of the chunk's length and finite; else MALFORMED_MESSAGE or
   * NON_FINITE naming the shard.
   */
  receiveScatter(from: number, rows: ScatterRows): void {
    if (from === this.rank || from >= this.plan.ranks || this.scattered.has(from)) {
      throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `unexpected scatter from rank ${from}`);
    }
    const expected = this.shardsHeldBy(from);
    if (rows.shards.length !== expected.length || rows.shards.some((shard, i) => shard !== expected[i])) {
      throw new CallosumError(
        ErrorCodes.MALFORMED_MESSAGE,
        `rank ${from} sent shards [${rows.shards.join(', ')}], it holds [${expected.join(', ')}]`,
      );
    }
    const length = this.own.end - this.own.start;
    if (rows.rows.length !== expected.length * length) {
      throw new CallosumError(
        ErrorCodes.MALFORMED_MESSAGE,
        `rank ${from} sent ${rows.rows.length} values for ${expected.length} rows of ${length}`,
      );
    }
    this.addRows(from, expected, (row) => rows.rows.subarray(row * length, (row + 1) * length));
  }

  /** Whether every rank's rows for this rank's chunk are in: the chunk can be reduced. */
  get chunkComplete(): boolean {
    return this.scattered.size === this.plan.ranks;
  }

  /**
   * This rank's chunk of the mean gradient, once every rank's rows are in; the same array is written
   * into the whole mean, so it is valid until the next `begin`.
   */
  reduceChunk(): Float32Array {
    if (!this.chunkComplete || this.chunkReduction === undefined) {
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'the chunk is reduced before every rank sent it');
    }
    const { meanGradient } = this.chunkReduction.reduction.finish();
    const chunk = this.mean.subarray(this.own.start, this.own.end);
    chunk.set(meanGradient);
    this.reduced = true;
    this.gathered.add(this.rank);
    return chunk;
  }

  /** Rank `from`'s chunk of the mean. Untrusted: checked for its length and finiteness. */
  receiveGather(from: number, chunk: Float32Array): void {
    if (from === this.rank || from >= this.plan.ranks || this.gathered.has(from)) {
      throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `unexpected gather from rank ${from}`);
    }
    const { start, end } = ringChunk(this.parameterCount, this.plan.ranks, from);
    if (chunk.length !== end - start) {
      throw new CallosumError(
        ErrorCodes.MALFORMED_MESSAGE,
        `rank ${from} sent a mean chunk of ${chunk.length} values, its chunk has ${end - start}`,
      );
    }
    assertFiniteShard({ ...EMPTY_TOTALS, count: 1, gradient: chunk }, from, chunk.length);
    this.mean.set(chunk, start);
    this.gathered.add(from);
  }

  /** Whether the whole mean gradient is here. */
  get complete(): boolean {
    return this.reduced && this.gathered.size === this.plan.ranks;
  }

  /** The step's mean gradient, valid until the next `begin`. Its totals are the coordinator's to count. */
  result(): ReducedStep {
    if (!this.complete) {
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'the mean gradient is read before it is complete');
    }
    return { ...EMPTY_TOTALS, count: this.plan.samples, meanGradient: this.mean };
  }

  private shardsHeldBy(rank: number): number[] {
    return this.plan.shards.flatMap((shard, index) => (shard.holder === rank ? [index] : []));
  }

  /** Adds rank `from`'s rows for this rank's chunk, `row(i)` being shard `shards[i]`'s. */
  private addRows(from: number, shards: readonly number[], row: (index: number) => Float32Array): void {
    const reduction = this.chunkReduction?.reduction;
    if (reduction === undefined) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'no step begun');
    const length = this.own.end - this.own.start;
    shards.forEach((shard, index) => {
      const { start, end } = this.plan.shards[shard] as RingShard;
      const result = { ...EMPTY_TOTALS, count: end - start, gradient: row(index) };
      assertFiniteShard(result, shard, length);
      reduction.add(shard, result);
    });
    this.scattered.add(from);
  }
}

/** A plan every rank can act on: ranks, shard ranges in order, holders among the ranks. */
function requirePlan(plan: RingPlan, rank: number): void {
  const problem =
    !Number.isInteger(plan.ranks) || plan.ranks < 1
      ? `a ring of ${plan.ranks} ranks`
      : !Number.isInteger(rank) || rank < 0 || rank >= plan.ranks
        ? `rank ${rank} outside a ring of ${plan.ranks}`
        : plan.shards.length === 0
          ? 'a step without shards'
          : plan.shards.find(
                (shard, index) =>
                  shard.holder >= plan.ranks ||
                  shard.end <= shard.start ||
                  shard.start !== (index === 0 ? 0 : plan.shards[index - 1]?.end) ||
                  (index === plan.shards.length - 1 && shard.end !== plan.samples),
              ) !== undefined
            ? `shards that do not tile ${plan.samples} samples among ${plan.ranks} ranks`
            : undefined;
  if (problem !== undefined) throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, problem);
}
