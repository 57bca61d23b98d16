import {
  batchNormChannels,
  batchNormPositions,
  type ComputeTimings,
  combineMoments,
  type ErrorCode,
  ErrorCodes,
  type LayersModel,
  type ShardMoments,
  type SyncedStatistics,
  statisticsLength,
  sumAdjoints,
} from '@callosum/core';

/** A validated `batch-norm-result`, as the dispatcher collects it. */
export interface BatchNormReply {
  readonly values: Float32Array;
  /** A moments pass's elements per channel. */
  readonly elements: number | undefined;
  readonly timings: ComputeTimings;
}

/** Why a result cannot be used. */
export interface ResultProblem {
  readonly code: ErrorCode;
  readonly reason: string;
}

/** One pass of a step: the moments of a layer's input, or the adjoint of its statistics. */
export interface PassOf {
  readonly kind: 'moments' | 'adjoint';
  readonly layer: number;
}

/**
 * The coordinator's side of synchronised BatchNormalization (core's train/sync-batch-norm.ts): which
 * passes a step takes (the moments of each layer in order, then the adjoints in reverse), what each
 * shard's result must look like, and how the results add up into what the step's compute requests carry.
 */
export class BatchNormSync {
  private constructor(
    private readonly channels: readonly number[],
    /** Each layer's positions per sample, where the model fixes them. */
    private readonly positions: readonly (number | undefined)[],
  ) {}

  /** For a model with BatchNormalization layers; undefined for one without. */
  static of(model: LayersModel): BatchNormSync | undefined {
    const channels = batchNormChannels(model);
    return channels.length === 0 ? undefined : new BatchNormSync(channels, batchNormPositions(model));
  }

  /** Passes per step: two per layer. */
  get passes(): number {
    return 2 * this.channels.length;
  }

  passOf(pass: number): PassOf {
    const layers = this.channels.length;
    return pass < layers
      ? { kind: 'moments', layer: pass }
      : { kind: 'adjoint', layer: 2 * layers - 1 - pass };
  }

  /**
   * Why a shard's result of `pass` cannot be used, if it cannot: `values` and `elements` as the result
   * carries them, for a shard of `count` samples.
   */
  problem(
    pass: number,
    values: Float32Array,
    elements: number | undefined,
    count: number,
  ): ResultProblem | undefined {
    const malformed = (reason: string): ResultProblem => ({ code: ErrorCodes.MALFORMED_MESSAGE, reason });
    if (pass >= this.passes) return malformed(`pass ${pass} of a step that has ${this.passes}`);
    const { kind, layer } = this.passOf(pass);
    const expected = 2 * (this.channels[layer] as number);
    if (values.length !== expected) {
      return malformed(
        `${values.length} values for BatchNormalization layer ${layer}, which needs ${expected}`,
      );
    }
    if (kind === 'moments') {
      const positions = this.positions[layer];
      const expected = positions === undefined ? undefined : count * positions;
      if (
        elements === undefined ||
        elements === 0 ||
        elements % count !== 0 ||
        (expected !== undefined && elements !== expected)
      ) {
        return malformed(
          `moments of BatchNormalization layer ${layer} over ${elements ?? 'no'} elements per channel, ` +
            `for ${count} samples${positions === undefined ? '' : ` of ${positions} positions each`}`,
        );
      }
    }
    if (!values.every(Number.isFinite)) {
      return {
        code: ErrorCodes.NON_FINITE,
        reason: `non-finite ${kind} of BatchNormalization layer ${layer}`,
      };
    }
    return undefined;
  }

  /**
   * Runs every pass of a step of `samples` samples, `run` computing one pass over every shard (results
   * in shard order), and returns what the step's gradient is computed with.
   */
  async synchronise(
    samples: number,
    run: (pass: number, known: SyncedStatistics) => Promise<readonly BatchNormReply[]>,
  ): Promise<SyncedStatistics> {
    const statistics = new Float32Array(statisticsLength(this.channels));
    const adjoints = new Float32Array(statistics.length);
    const known = { statistics, adjoints, samples };
    for (let pass = 0; pass < this.passes; pass++) {
      const { kind, layer } = this.passOf(pass);
      const replies = await run(pass, known);
      if (kind === 'moments') {
        combineMoments(replies.map(momentsOf), this.channels, layer, statistics);
      } else {
        sumAdjoints(
          replies.map((reply) => reply.values),
          this.channels,
          layer,
          adjoints,
        );
      }
    }
    return known;
  }
}

function momentsOf({ values, elements }: BatchNormReply): ShardMoments {
  const channels = values.length / 2;
  return {
    mean: values.subarray(0, channels),
    squaredDeviations: values.subarray(channels),
    elements: elements ?? 0,
  };
}
