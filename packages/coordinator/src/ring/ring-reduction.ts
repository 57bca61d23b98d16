import type { ReduceRequest, StepPlan, WorkerMessage } from '@callosum/core';
import type { Cancel, Clock } from '../dispatch/clock.js';
import type { ShardOutcome } from '../dispatch/shard-dispatcher.js';
import { lateAfterMs } from '../dispatch/straggler-rule.js';
import { StepRedo } from '../run/gradient-path.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { WorkerConnection } from '../workers/connection.js';
import type { WorkerRegistry } from '../workers/registry.js';

export interface RingReductionContext {
  readonly membership: WorkerRegistry;
  readonly telemetry: Telemetry;
  readonly clock: Clock;
  /** A peer is late once the reduction has taken `stragglerFactor` × the typical one, and at least the floor. */
  readonly settings: {
    readonly stragglerFactor: number;
    readonly stragglerFloorMs: number;
    readonly shardDeadlineMs: number;
    readonly replicaCheckEverySteps: number;
  };
}

/** What the peers reported of a finished reduction. */
export interface RingReduced {
  /** Bytes each participant sent to and received from its peers, by worker id. */
  readonly peerBytes: ReadonlyMap<string, number>;
}

interface Active {
  readonly step: number;
  readonly attempt: number;
  readonly participants: readonly WorkerConnection[];
  /** The worker holding each shard's gradient, in shard order. */
  readonly holders: readonly WorkerConnection[];
  readonly peerBytes: Map<string, number>;
  /** Each participant's replica digest, on the steps that compare them. */
  readonly digests: Map<WorkerConnection, string>;
  readonly checksReplicas: boolean;
  /**
   * Set once every shard is answered by the holders the reduction was started with: then it may
   * apply, and the late-peer deadline runs. Until then it was only announced with the step's requests.
   */
  confirmed:
    | {
        readonly startedAt: number;
        /** How many frames each participant had sent by then: who was heard from since. */
        readonly framesHeard: ReadonlyMap<WorkerConnection, number>;
        readonly cancelDeadline: Cancel;
        readonly resolve: (reduced: RingReduced) => void;
        readonly reject: (error: Error) => void;
      }
    | undefined;
}

/** Whether `a` and `b` are the same workers in the same order. */
function sameWorkers(a: readonly WorkerConnection[], b: readonly WorkerConnection[]): boolean {
  return a.length === b.length && a.every((worker, i) => worker === b[i]);
}

/** Reductions remembered for the typical duration that the late-peer deadline scales. */
const RECENT_REDUCTIONS = 20;

/**
 * The coordinator's part in a ring step's reduction: tells every participant (the workers holding the
 * step's gradients, and every other healthy one, so that all replicas stay in step) the plan and the
 * ranks, as the step's shards are sent, waits until each holds the whole mean gradient, then tells them
 * all to apply it. A participant lost, late or failing before that abandons the reduction (StepRedo)
 * with no replica changed. Attempts are numbered per step, so that peers tell a reduction from the
 * ones it replaces.
 */
export class RingReduction {
  private active: Active | undefined;
  private readonly recentMs: number[] = [];
  /** The step whose reductions are being numbered, and the attempt number its next one gets. */
  private numbering = { step: -1, next: 0 };

  constructor(private readonly context: RingReductionContext) {
    context.membership.subscribe({
      lost: (worker) => {
        if (this.active?.participants.includes(worker)) this.abandon(`worker ${worker.label} left`);
      },
    });
  }

  /**
   * The step's shards were just sent to `holders` (in shard order): tells the participants to reduce
   * them, so that each worker starts the exchange as soon as its own shards are computed instead of
   * after a round trip through here. It applies only once `run` finds the shards answered by the
   * same workers; otherwise `run` starts another attempt.
   */
  announce(step: number, plan: StepPlan, holders: readonly WorkerConnection[]): void {
    this.drop();
    this.start(step, plan, holders);
  }

  /** Reduces step `step`, planned as `plan`, whose shards `outcomes` hold. */
  run(step: number, plan: StepPlan, outcomes: readonly ShardOutcome<unknown>[]): Promise<RingReduced> {
    const holders = outcomes.map((outcome) => outcome.worker);
    const gone = holders.find((worker) => worker.state === 'gone');
    if (gone !== undefined) {
      this.drop();
      return Promise.reject(new StepRedo(`worker ${gone.label}, which holds gradients of the step, left`));
    }
    // A shard sent again (even to the worker that held it) was computed after that worker had taken the
    // announced reduce: a new compute request makes a worker drop the reduction it was in.
    const announced = this.active;
    const same =
      announced !== undefined &&
      announced.step === step &&
      outcomes.every((outcome) => outcome.sends === 1) &&
      sameWorkers(announced.holders, holders) &&
      sameWorkers(announced.participants, this.participantsFor(holders));
    if (!same) {
      this.drop();
      this.start(step, plan, holders);
    }
    const active = this.active as Active;
    return new Promise<RingReduced>((resolve, reject) => {
      active.confirmed = {
        startedAt: this.context.clock.now(),
        framesHeard: new Map(active.participants.map((worker) => [worker, worker.framesHeard])),
        cancelDeadline: this.context.clock.after(this.lateAfterMs(), () => this.late(active)),
        resolve,
        reject,
      };
      // Every peer may hold the mean already: the exchange started when the shards were sent.
      this.applyIfReduced(active);
    });
  }

  /** Starts a reduction of `step`'s shards held by `holders`: sends every participant its `reduce`. */
  private start(step: number, plan: StepPlan, holders: readonly WorkerConnection[]): void {
    const participants = this.participantsFor(holders);
    const rankOf = new Map(participants.map((worker, rank) => [worker, rank]));
    const peers = participants.map((worker) => ({
      workerId: worker.id,
      address: worker.peerAddress as string,
    }));
    const shards = plan.shards.map(({ start, end }, index) => ({
      start,
      end,
      holder: rankOf.get(holders[index] as WorkerConnection) as number,
    }));
    if (this.numbering.step !== step) this.numbering = { step, next: 0 };
    const attempt = this.numbering.next++;
    const checksReplicas = step % this.context.settings.replicaCheckEverySteps === 0;
    this.active = {
      step,
      attempt,
      participants,
      holders,
      peerBytes: new Map(),
      digests: new Map(),
      checksReplicas,
      confirmed: undefined,
    };
    participants.forEach((worker, rank) => {
      const reduce: ReduceRequest = {
        type: 'reduce',
        step,
        attempt,
        rank,
        samples: plan.samples,
        shards,
        peers,
        ...(checksReplicas ? { digest: true } : {}),
      };
      worker.send(reduce);
    });
  }

  /**
   * Who reduces shards held by `holders`: they, and every other healthy worker, so that all replicas
   * stay in step; in join order, so ranks follow the registry as shard parts do.
   */
  private participantsFor(holders: readonly WorkerConnection[]): WorkerConnection[] {
    const holding = new Set(holders);
    return this.context.membership
      .all()
      .filter(
        (worker) => holding.has(worker) || (worker.state === 'healthy' && worker.peerAddress !== undefined),
      );
  }

  /** A participant holds the whole mean: once all do, and the reduction is confirmed, they apply it. */
  reduced(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'reduced' }>): void {
    const active = this.active;
    if (active?.step !== message.step || active.attempt !== message.attempt) return;
    if (!active.participants.includes(worker)) return;
    active.peerBytes.set(worker.id, message.peerBytes);
    if (message.replicaDigest !== undefined) active.digests.set(worker, message.replicaDigest);
    this.applyIfReduced(active);
  }

  /** Once every participant holds the mean of a confirmed reduction, every one of them is told to apply it. */
  private applyIfReduced(active: Active): void {
    const confirmed = active.confirmed;
    if (confirmed === undefined || active.peerBytes.size < active.participants.length) return;
    if (active.checksReplicas && this.divergedReplicas(active)) return;
    this.end(active);
    for (const participant of active.participants) {
      participant.send({ type: 'apply', step: active.step, attempt: active.attempt });
      participant.holdsReplica(active.step + 1);
    }
    this.recentMs.push(this.context.clock.now() - confirmed.startedAt);
    if (this.recentMs.length > RECENT_REDUCTIONS) this.recentMs.shift();
    confirmed.resolve({ peerBytes: active.peerBytes });
  }

  /**
   * A participant's failure during the reduction (a lost link, an invalid peer message), or of one of
   * the step's shards: that one gives up only a reduction still waiting for its shards, and only from
   * the worker planned to hold it (the shard is sent again, and `run` starts another attempt). After
   * every shard was answered, a shard's failure is a late one, of a shard redone elsewhere.
   */
  failed(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'failure' }>): void {
    const active = this.active;
    if (active === undefined || message.step !== active.step || !active.participants.includes(worker)) return;
    if (
      message.shard !== undefined &&
      (active.confirmed !== undefined || active.holders[message.shard] !== worker)
    ) {
      return;
    }
    this.abandon(`worker ${worker.label} reports ${message.code}: ${message.message}`);
  }

  /**
   * Whether a failure is of a reduction attempt that is no longer under way (1.11 workers name it): one
   * given up already (a worker whose compute failed then fails the `reduce` announced with it, whose
   * attempt that failure gave up), replaced (a `PEER_LOST` arriving late), or ended. A failure naming
   * no attempt (an older worker's), or a shard (a request's), is not.
   */
  isAbandoned(message: Extract<WorkerMessage, { type: 'failure' }>): boolean {
    if (message.attempt === undefined || message.shard !== undefined) return false;
    const active = this.active;
    return active === undefined || active.step !== message.step || active.attempt !== message.attempt;
  }

  /**
   * Who the reduction under way still waits for, for /status; undefined between reductions and while
   * the step's shards are still being computed.
   */
  get waitingFor(): { step: number; attempt: number; workers: string[] } | undefined {
    const active = this.active;
    if (active?.confirmed === undefined) return undefined;
    const workers = active.participants
      .filter((worker) => !active.peerBytes.has(worker.id))
      .map((worker) => worker.id);
    return { step: active.step, attempt: active.attempt, workers };
  }

  /**
   * Compares the replicas the step was computed with. Those whose digest differs from the one most share
   * (on a tie, the earliest-joined worker's) are named and will get the state of one that agrees; the
   * step, which their gradients spoiled, is redone. True when that happened.
   */
  private divergedReplicas(active: Active): boolean {
    const byDigest = new Map<string, WorkerConnection[]>();
    for (const worker of active.participants) {
      const digest = active.digests.get(worker) ?? 'none';
      byDigest.set(digest, [...(byDigest.get(digest) ?? []), worker]);
    }
    if (byDigest.size <= 1) return false;
    // Map order is first-seen over participants in join order, and only a larger group replaces the best.
    const [expected] = [...byDigest].reduce((best, group) =>
      group[1].length > best[1].length ? group : best,
    );
    for (const [digest, workers] of byDigest) {
      if (digest === expected) continue;
      for (const worker of workers) {
        this.context.telemetry.record({
          type: 'replica-diverged',
          ...worker.idNameAddress,
          step: active.step,
          digest,
          expected,
        });
        // Its replica is no source for anyone, and it gets a good one before more work.
        worker.holdsReplica(-1);
        if (worker.state === 'healthy') worker.fellBehind();
      }
    }
    this.abandon('a replica diverged');
    return true;
  }

  private late(active: Active): void {
    if (this.active !== active || active.confirmed === undefined) return;
    const pendingMs = this.context.clock.now() - active.confirmed.startedAt;
    const pending = active.participants.filter((worker) => !active.peerBytes.has(worker.id));
    // A peer waiting for a frozen one cannot finish either, but it still heartbeats (every second by
    // default; the deadline is 2 s at least): when some pending peers were heard from since the
    // reduction was confirmed and others were not, the silent ones alone hold it up, and the others
    // stay healthy for the redone step. When all or none were heard (a slow link, say), there is no
    // telling, and all are late.
    const { framesHeard } = active.confirmed;
    const silent = pending.filter((worker) => worker.framesHeard === framesHeard.get(worker));
    const late = silent.length > 0 ? silent : pending;
    for (const worker of late) {
      this.context.telemetry.record({
        type: 'late-peer',
        ...worker.idNameAddress,
        step: active.step,
        phase: 'reducing',
        heartbeatPhase: worker.phase,
        pendingMs,
        lastHeardMs: Math.max(0, Date.now() - worker.lastHeardAt),
      });
      if (worker.state === 'healthy') worker.suspected();
    }
    this.abandon(`${late.map((worker) => worker.label).join(', ')} late after ${Math.round(pendingMs)} ms`);
  }

  /**
   * Gives the reduction under way up: a confirmed one redoes the step; one only announced is started
   * again by `run`, with the workers that answered its shards.
   */
  private abandon(reason: string): void {
    const active = this.active;
    if (active === undefined) return;
    this.end(active);
    active.confirmed?.reject(new StepRedo(reason));
  }

  /** Forgets a reduction that was announced and not confirmed (its peers' messages are dropped by attempt). */
  private drop(): void {
    if (this.active !== undefined && this.active.confirmed === undefined) this.end(this.active);
  }

  private end(active: Active): void {
    active.confirmed?.cancelDeadline();
    if (this.active === active) this.active = undefined;
  }

  /** The straggler rule over recent reductions; the hard shard deadline until there are any. */
  private lateAfterMs(): number {
    const { stragglerFactor, stragglerFloorMs, shardDeadlineMs } = this.context.settings;
    if (this.recentMs.length === 0) return shardDeadlineMs;
    const rule = { factor: stragglerFactor, floorMs: stragglerFloorMs };
    return Math.min(shardDeadlineMs, lateAfterMs(rule, this.recentMs, 1));
  }
}
