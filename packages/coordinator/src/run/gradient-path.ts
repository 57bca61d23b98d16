import type { BatchTotals, ComputeTimings, StepPlan } from '@callosum/core';
import type { ShardOutcome } from '../dispatch/shard-dispatcher.js';
import type { WorkerConnection } from '../workers/connection.js';

/** A validated answer to one shard of a training step: its totals (and, in the star, its gradient). */
export interface StepReply<T extends BatchTotals = BatchTotals> {
  readonly totals: T;
  readonly timings: ComputeTimings;
}

/** What became of a step once every shard was answered. */
export interface AppliedStep {
  /** The step's loss and metric sums over its whole batch. */
  readonly totals: BatchTotals;
  readonly learningRate: number;
  /** Applying the mean gradient here (the star); 0 in the ring, whose workers apply it as they reduce. */
  readonly optimizerMs: number;
  /** Ring: what each worker moved among its peers for the step, by worker id. */
  readonly peerBytes?: ReadonlyMap<string, number>;
}

/**
 * The step's shards could not be reduced (a ring peer was lost, late or sent something invalid) and no
 * replica changed: the whole step is computed again.
 */
export class StepRedo extends Error {
  override readonly name = 'StepRedo';
}

/**
 * Where a step's gradients go once computed, the one thing the two topologies do differently: in the
 * star, here, where they are reduced and applied; in the ring, nowhere, as the workers reduce them among
 * themselves and apply the mean to their replicas.
 */
export interface GradientPath {
  /** Before a step (or its redo) is planned: the ring hands the current state to workers that joined. */
  prepare(): Promise<void>;
  /** A step planned as `plan` starts; what an abandoned attempt added is forgotten. */
  begin(plan: StepPlan): void;
  /**
   * The step's shards were sent: shard i to `holders[i]` (undefined: to no worker yet). The ring starts
   * its reduction here, so that a worker starts exchanging as soon as its own shards are computed.
   */
  dispatched(step: number, plan: StepPlan, holders: readonly (WorkerConnection | undefined)[]): void;
  /** Each shard's reply as it is accepted, to start reducing before the slowest arrives. */
  accepted(shard: number, reply: StepReply): void;
  /** Every shard answered: reduces and applies the step, or throws StepRedo. */
  finish(step: number, plan: StepPlan, outcomes: readonly ShardOutcome<StepReply>[]): Promise<AppliedStep>;
}
