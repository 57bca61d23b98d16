import { CallosumError, type CoordinatorMessage, type ErrorCode, ErrorCodes } from '@callosum/core';
import type { RunCounters } from '../telemetry/counters.js';
import type { WorkerConnection } from '../workers/connection.js';
import type { WorkerRegistry } from '../workers/registry.js';
import type { Cancel, Clock } from './clock.js';
import { describeRound, type RoundId, sameRound } from './round-id.js';
import { lateAfterMs, typicalShardMs } from './straggler-rule.js';

/** What a worker is asked to do for one shard. */
export type ShardRequest = Extract<CoordinatorMessage, { type: 'compute' | 'evaluate' | 'batch-norm' }>;

/** One shard of a round. */
export interface ShardTask {
  readonly index: number;
  /** The worker slot it is first sent to: healthy worker number `part` (modulo their count). */
  readonly part: number;
  readonly count: number;
  readonly request: ShardRequest;
}

/** The way out to the workers: delivers a shard's request (with the weights it needs) to one of them. */
export interface ShardSender {
  send(worker: WorkerConnection, request: ShardRequest): void;
}

/**
 * What the dispatcher finds out about a worker. For a straggler or a missed deadline the owner takes
 * the worker out of the healthy set (suspect, or evicted) before it returns; the dispatcher then redoes
 * whatever the worker holds on the others. The owner keeps count of what each worker does in a row.
 */
export interface DispatchFindings {
  missedDeadline(worker: WorkerConnection, shard: number, round: RoundId): void;
  straggler(worker: WorkerConnection, shard: number, pendingMs: number, typicalMs: number): void;
  /** A result of `worker` was accepted. */
  delivered(worker: WorkerConnection, round: RoundId): void;
  /**
   * A shard that `worker` failed or answered unusably (`problem`) has since been computed by another
   * worker, so the fault was this worker's, not the shard's. Not reported for a worker that had a result
   * accepted in the round after it failed the shard.
   */
  failedShard(worker: WorkerConnection, round: RoundId, shard: number, problem: ShardProblem): void;
}

/** Why a worker's answer for a shard cannot be used: an error code and what was wrong. */
export interface ShardProblem {
  readonly code: ErrorCode;
  readonly reason: string;
}

/** What a dispatcher works with: the workers, the way to them, time, and where to report. */
export interface DispatcherSeams {
  readonly membership: WorkerRegistry;
  readonly sender: ShardSender;
  readonly findings: DispatchFindings;
  readonly counters: RunCounters;
  readonly clock: Clock;
  readonly log: (line: string) => void;
}

/** A result for one shard, with when its worker could start on it and when it answered. */
export interface ShardOutcome<R> {
  readonly result: R;
  readonly worker: WorkerConnection;
  /**
   * When the shard was sent, or when the same worker last answered (or had rejected) a shard of the
   * round before it.
   */
  readonly startedAt: number;
  readonly receivedAt: number;
  /** How many times the shard was sent in the round: more than once when it was redone. */
  readonly sends: number;
}

export interface DispatcherOptions {
  /** Longest a shard may take on one worker before the worker is evicted and the shard redone. */
  readonly shardDeadlineMs: number;
  /** Longest a round may wait with no healthy worker before the run stops. */
  readonly noWorkerTimeoutMs: number;
  /**
   * A shard is late once its worker has been on it `stragglerFactor` times as long as the median time
   * per sample of the shards already answered in its round predicts for its size, but never before
   * `stragglerFloorMs`. Its worker is reported (and set aside by the findings' owner) and the shard is
   * redone elsewhere; whatever the late worker sends for it is discarded.
   */
  readonly stragglerFactor: number;
  readonly stragglerFloorMs: number;
}

/**
 * How many times one shard may be sent (its worker lost, late or answering badly) before the run stops;
 * past it, only a shard that was answered badly goes on, to a healthy worker that has not failed it.
 */
const MAX_ATTEMPTS_PER_SHARD = 5;

interface Assignment {
  worker: WorkerConnection;
  sentAt: number;
  cancelDeadline: Cancel;
}

/** A worker's failure of a shard (a `failure` reply or a rejected result), within one round. */
interface Failed extends ShardProblem {
  /**
   * Whether it may get the shard back when no other healthy worker can take it. Not after a non-finite
   * result: the same weights would reproduce it there.
   */
  readonly again: boolean;
  /** Still to be counted against the worker once another worker computes the shard. */
  pending: boolean;
}

interface ActiveRound {
  readonly id: RoundId;
  /** For log lines. */
  readonly label: string;
  readonly onAccepted: ((shard: number, result: unknown) => void) | undefined;
  readonly tasks: readonly ShardTask[];
  readonly outcomes: (ShardOutcome<unknown> | undefined)[];
  readonly attempts: number[];
  readonly assignments: Map<number, Assignment>;
  readonly unassigned: Set<number>;
  remaining: number;
  /** Milliseconds per sample of each answered shard, for the straggler deadline. */
  readonly answeredMsPerSample: number[];
  /** When each worker last answered in this round, usable or not: its next shard starts then. */
  readonly lastAnsweredAt: Map<WorkerConnection, number>;
  /**
   * Per shard, the workers that failed it in this round, the one that failed it longest ago first; it
   * goes to them again only if no other can take it.
   */
  readonly failedBy: Map<number, Map<WorkerConnection, Failed>>;
  cancelStragglerCheck: Cancel | undefined;
  /** While no healthy worker can take a shard: when the wait began, and how to cancel its stop. */
  noWorkerWait: { readonly since: number; readonly cancel: Cancel } | undefined;
  resolve: (outcomes: ShardOutcome<unknown>[]) => void;
  reject: (error: Error) => void;
}

/**
 * Runs rounds of shards (a training step, or an evaluation pass) over the healthy workers: first each
 * shard to the worker of its part, then re-sends any shard whose worker is lost, late or answers
 * badly, to the healthy worker with the fewest pending samples among those that have not failed it in
 * the round (among those that have, only when no other can take it). A round resolves with every
 * shard's result in shard order, or rejects with a reason; it never waits without a bound.
 */
export class ShardDispatcher {
  private round: ActiveRound | undefined;

  constructor(
    private readonly seams: DispatcherSeams,
    private readonly options: DispatcherOptions,
  ) {
    seams.membership.subscribe({
      available: () => {
        if (this.round !== undefined) this.assignWaiting(this.round);
      },
      lost: (worker) => {
        if (this.round !== undefined) this.redoAllOf(this.round, worker, `worker ${worker.label} was lost`);
      },
    });
  }

  /** `onAccepted` sees each result as it is accepted, to start reducing before the round ends. */
  run<R>(
    id: RoundId,
    tasks: readonly ShardTask[],
    onAccepted?: (shard: number, result: R) => void,
  ): Promise<ShardOutcome<R>[]> {
    if (this.round !== undefined) throw new Error(`round ${this.round.label} is still running`);
    return new Promise<ShardOutcome<R>[]>((resolve, reject) => {
      const round: ActiveRound = {
        id,
        label: describeRound(id),
        onAccepted: onAccepted as ActiveRound['onAccepted'],
        tasks,
        outcomes: tasks.map(() => undefined),
        attempts: tasks.map(() => 0),
        assignments: new Map(),
        unassigned: new Set(tasks.map((task) => task.index)),
        remaining: tasks.length,
        answeredMsPerSample: [],
        lastAnsweredAt: new Map(),
        failedBy: new Map(),
        cancelStragglerCheck: undefined,
        noWorkerWait: undefined,
        resolve: resolve as (outcomes: ShardOutcome<unknown>[]) => void,
        reject,
      };
      this.round = round;
      if (tasks.length === 0) {
        this.finish(round);
        return;
      }
      const workers = this.seams.membership.healthy();
      for (const task of tasks) {
        const worker = workers[task.part % Math.max(workers.length, 1)];
        if (worker?.state === 'healthy') this.assign(round, task, worker);
      }
      this.assignWaiting(round);
    });
  }

  /**
   * Accepts a result if its shard is pending on that worker in the current round (otherwise discards
   * it) and covers exactly the shard's samples (otherwise redoes the shard).
   */
  accept<R>(id: RoundId, shard: number, worker: WorkerConnection, sampleCount: number, result: R): boolean {
    const round = this.round;
    const assignment = round?.assignments.get(shard);
    if (round === undefined || !sameRound(round.id, id) || assignment?.worker !== worker) {
      this.seams.counters.discardedMessages += 1;
      return false;
    }
    const expected = round.tasks[shard]?.count;
    if (sampleCount !== expected) {
      this.reject(id, shard, worker, {
        code: ErrorCodes.MALFORMED_MESSAGE,
        reason: `result counts ${sampleCount} samples, the shard has ${expected}`,
      });
      return false;
    }
    assignment.cancelDeadline();
    round.assignments.delete(shard);
    const receivedAt = this.seams.clock.now();
    const startedAt = startOf(round, assignment);
    round.lastAnsweredAt.set(worker, receivedAt);
    round.outcomes[shard] = { result, worker, startedAt, receivedAt, sends: round.attempts[shard] ?? 1 };
    round.answeredMsPerSample.push((receivedAt - startedAt) / Math.max(1, sampleCount));
    this.judgeFailures(round, shard, worker);
    round.onAccepted?.(shard, result);
    round.remaining -= 1;
    if (round.remaining === 0) this.finish(round);
    else this.armStragglerTimer(round);
    return true;
  }

  /**
   * A worker's answer for a shard cannot be used (bad data, compute failure): redo it on another
   * worker; on this one again only if no other healthy worker can take it, and with `notOnSameWorker`
   * never in this round (a non-finite result that the same weights would reproduce there). Once
   * another worker has computed the shard, the failure is reported against this worker.
   */
  reject(
    id: RoundId,
    shard: number,
    worker: WorkerConnection,
    problem: ShardProblem,
    notOnSameWorker = false,
  ): void {
    const round = this.round;
    const assignment = round?.assignments.get(shard);
    if (round === undefined || !sameRound(round.id, id) || assignment?.worker !== worker) {
      this.seams.counters.discardedMessages += 1;
      return;
    }
    this.seams.log(
      `coordinator: ${round.label}: shard ${shard} from worker ${worker.label} rejected: ${oneLine(problem.reason)}`,
    );
    round.lastAnsweredAt.set(worker, this.seams.clock.now());
    const failed = round.failedBy.get(shard) ?? new Map<WorkerConnection, Failed>();
    round.failedBy.set(shard, failed);
    const again = !notOnSameWorker && failed.get(worker)?.again !== false;
    // Last in the map: the others that failed it go before it when the shard has to be retried.
    failed.delete(worker);
    failed.set(worker, { code: problem.code, reason: problem.reason, again, pending: true });
    this.redo(round, shard, `worker ${worker.label}: ${problem.reason}`, true);
  }

  /** The worker each shard of the current round is pending on, in shard order (undefined: none). */
  assignedWorkers(): (WorkerConnection | undefined)[] {
    const round = this.round;
    if (round === undefined) return [];
    return round.tasks.map((task) => round.assignments.get(task.index)?.worker);
  }

  /** Pending shards per worker, for status and for naming late workers. */
  pendingOn(worker: WorkerConnection): number[] {
    const round = this.round;
    if (round === undefined) return [];
    return [...round.assignments].filter(([, a]) => a.worker === worker).map(([shard]) => shard);
  }

  /**
   * How long the round under way has waited for a healthy worker, and how long it waits in all before
   * the run stops; undefined when it is not waiting.
   */
  waitingForWorker(): { waitedMs: number; timeoutMs: number } | undefined {
    const wait = this.round?.noWorkerWait;
    if (wait === undefined) return undefined;
    return {
      waitedMs: Math.round(this.seams.clock.now() - wait.since),
      timeoutMs: this.options.noWorkerTimeoutMs,
    };
  }

  /** Stops the current round, if any, with `error`. */
  abort(error: Error): void {
    const round = this.round;
    if (round === undefined) return;
    this.cleanup(round);
    round.reject(error);
  }

  private assign(round: ActiveRound, task: ShardTask, worker: WorkerConnection): void {
    round.unassigned.delete(task.index);
    round.attempts[task.index] = (round.attempts[task.index] ?? 0) + 1;
    const cancelDeadline = this.seams.clock.after(this.options.shardDeadlineMs, () =>
      this.deadlineMissed(round, task.index),
    );
    round.assignments.set(task.index, { worker, sentAt: this.seams.clock.now(), cancelDeadline });
    this.seams.sender.send(worker, task.request);
  }

  /**
   * Sends `shard` again, or stops the round once it has failed too often; `why` it failed this time,
   * and whether its worker `answered` (a failure or a rejected result, rather than lost or late). A
   * shard that has been sent MAX_ATTEMPTS_PER_SHARD times goes on only if it was answered and a healthy
   * worker that has not failed it is there: the shard is then not what fails, and some workers'
   * bad answers never stop a run that another can compute. A shard lost with its workers, or failed by
   * every worker, stops it.
   */
  private redo(round: ActiveRound, shard: number, why: string, answered = false): void {
    round.assignments.get(shard)?.cancelDeadline();
    round.assignments.delete(shard);
    const untried = () =>
      this.seams.membership.healthy().some((worker) => !round.failedBy.get(shard)?.has(worker));
    if ((round.attempts[shard] ?? 0) >= MAX_ATTEMPTS_PER_SHARD && !(answered && untried())) {
      this.cleanup(round);
      // The last reason is the one to act on: a failure that repeats five times is rarely chance.
      round.reject(
        new CallosumError(
          ErrorCodes.COMPUTE_FAILED,
          `${round.label}: shard ${shard} failed ${round.attempts[shard]} times (last: ${oneLine(why).slice(0, 1000)}); stopping`,
        ),
      );
      return;
    }
    this.seams.counters.redoneShards += 1;
    round.unassigned.add(shard);
    this.assignWaiting(round);
  }

  /** Redoes every shard pending on `worker`, stopping if that ends the round. */
  private redoAllOf(round: ActiveRound, worker: WorkerConnection, why: string): void {
    for (const [shard, assignment] of [...round.assignments]) {
      if (this.round !== round) return;
      if (assignment.worker === worker) this.redo(round, shard, why);
    }
  }

  private assignWaiting(round: ActiveRound): void {
    if (this.round !== round) return;
    const waiting = round.unassigned.size;
    for (const shard of [...round.unassigned]) {
      if (this.round !== round || !round.unassigned.has(shard)) continue;
      const worker = this.redoTarget(round, shard);
      if (worker !== undefined) this.assign(round, round.tasks[shard] as ShardTask, worker);
    }
    if (round.unassigned.size < waiting) this.armStragglerTimer(round);
    if (round.unassigned.size === 0) {
      round.noWorkerWait?.cancel();
      round.noWorkerWait = undefined;
    } else if (round.noWorkerWait === undefined) {
      this.seams.log(
        `coordinator: ${round.label}: no healthy worker; waiting up to ${this.options.noWorkerTimeoutMs} ms for one to join (start a worker with callosum worker --connect)`,
      );
      const cancel = this.seams.clock.after(this.options.noWorkerTimeoutMs, () => {
        this.cleanup(round);
        round.reject(
          new CallosumError(
            ErrorCodes.NO_WORKERS,
            `${round.label}: no healthy worker for ${this.options.noWorkerTimeoutMs} ms`,
          ),
        );
      });
      round.noWorkerWait = { since: this.seams.clock.now(), cancel };
    }
  }

  /**
   * Where `shard` goes: the healthy worker with the fewest pending samples among those that have not
   * failed it in this round; if every healthy worker has, the least loaded of those that may have it
   * again, on a tie the one that failed it longest ago. (A worker that fails at once is always the least
   * loaded: by load alone it would get its own shard back.)
   */
  private redoTarget(round: ActiveRound, shard: number): WorkerConnection | undefined {
    const failed = round.failedBy.get(shard);
    const loadOf = (worker: WorkerConnection) => {
      let load = 0;
      for (const [pending, assignment] of round.assignments) {
        if (assignment.worker === worker) load += round.tasks[pending]?.count ?? 0;
      }
      return load;
    };
    const leastLoaded = (workers: WorkerConnection[]) => {
      let best: WorkerConnection | undefined;
      let bestLoad = Number.POSITIVE_INFINITY;
      for (const worker of workers) {
        const load = loadOf(worker);
        if (load < bestLoad) [best, bestLoad] = [worker, load];
      }
      return best;
    };
    const healthy = this.seams.membership.healthy();
    return (
      leastLoaded(healthy.filter((worker) => !failed?.has(worker))) ??
      leastLoaded(
        [...(failed ?? [])].flatMap(([worker, failure]) =>
          failure.again && worker.state === 'healthy' ? [worker] : [],
        ),
      )
    );
  }

  /**
   * `worker`'s result for `shard` was accepted: what it failed earlier in the round no longer counts
   * against it (it has delivered since), and whoever else failed this shard is reported: another worker
   * computed what they could not.
   */
  private judgeFailures(round: ActiveRound, shard: number, worker: WorkerConnection): void {
    for (const failed of round.failedBy.values()) {
      const own = failed.get(worker);
      if (own !== undefined) own.pending = false;
    }
    this.seams.findings.delivered(worker, round.id);
    for (const [other, failure] of round.failedBy.get(shard) ?? []) {
      if (!failure.pending) continue;
      failure.pending = false;
      this.seams.findings.failedShard(other, round.id, shard, { code: failure.code, reason: failure.reason });
    }
  }

  /**
   * (Re)arms one timer for the pending shard that will be late first. A worker answers its shards in
   * turn, so only its oldest pending shard is being computed and judged; when that one is late, the
   * worker is named once and everything it holds is redone, including the shards queued behind it.
   */
  private armStragglerTimer(round: ActiveRound): void {
    round.cancelStragglerCheck?.();
    round.cancelStragglerCheck = undefined;
    if (round.answeredMsPerSample.length === 0 || round.assignments.size === 0) return;
    const rule = { factor: this.options.stragglerFactor, floorMs: this.options.stragglerFloorMs };
    const samples = (shard: number) => round.tasks[shard]?.count ?? 0;
    const typicalMs = (shard: number) => typicalShardMs(round.answeredMsPerSample, samples(shard));
    const lateAfter = (shard: number) => lateAfterMs(rule, round.answeredMsPerSample, samples(shard));
    const firstLate = Math.min(
      ...oldestPendingPerWorker(round).map(
        ([shard, assignment]) => startOf(round, assignment) + lateAfter(shard),
      ),
    );
    // An infinite factor turns the deadline off.
    if (!Number.isFinite(firstLate)) return;
    const { clock } = this.seams;
    round.cancelStragglerCheck = clock.after(firstLate - clock.now(), () => {
      const now = clock.now();
      for (const [shard, assignment] of oldestPendingPerWorker(round)) {
        if (this.round !== round) return;
        // Redone meanwhile (its worker was lost while another late one was being handled).
        if (round.assignments.get(shard) !== assignment) continue;
        const pendingMs = now - startOf(round, assignment);
        if (pendingMs < lateAfter(shard)) continue;
        this.seams.counters.lateShards += 1;
        this.seams.findings.straggler(assignment.worker, shard, pendingMs, typicalMs(shard));
        this.redoAllOf(
          round,
          assignment.worker,
          `worker ${assignment.worker.label} was late (${Math.round(pendingMs)} ms)`,
        );
      }
      if (this.round === round) this.armStragglerTimer(round);
    });
  }

  /**
   * The hard deadline, like the straggler deadline, holds only against the shard a worker is on and
   * runs from when it could start on it: a shard queued behind others of its worker waits on.
   */
  private deadlineMissed(round: ActiveRound, shard: number): void {
    const assignment = round.assignments.get(shard);
    if (assignment === undefined || this.round !== round) return;
    const remainingMs =
      currentShardOf(round, assignment.worker) === shard
        ? startOf(round, assignment) + this.options.shardDeadlineMs - this.seams.clock.now()
        : this.options.shardDeadlineMs;
    if (remainingMs > 0) {
      assignment.cancelDeadline = this.seams.clock.after(remainingMs, () =>
        this.deadlineMissed(round, shard),
      );
      return;
    }
    this.seams.findings.missedDeadline(assignment.worker, shard, round.id);
    this.redoAllOf(round, assignment.worker, `worker ${assignment.worker.label} missed the shard deadline`);
  }

  private finish(round: ActiveRound): void {
    this.cleanup(round);
    round.resolve(round.outcomes as ShardOutcome<unknown>[]);
  }

  private cleanup(round: ActiveRound): void {
    for (const assignment of round.assignments.values()) assignment.cancelDeadline();
    round.noWorkerWait?.cancel();
    round.cancelStragglerCheck?.();
    if (this.round === round) this.round = undefined;
  }
}

/** When the worker could start on this shard: when it was sent, or when it answered its previous one. */
function startOf(round: ActiveRound, assignment: Assignment): number {
  return Math.max(assignment.sentAt, round.lastAnsweredAt.get(assignment.worker) ?? 0);
}

/** The shard `worker` is computing: its oldest pending one. */
function currentShardOf(round: ActiveRound, worker: WorkerConnection): number | undefined {
  for (const [shard, assignment] of round.assignments) if (assignment.worker === worker) return shard;
  return undefined;
}

/** Each worker's oldest pending shard (assignments keep the order in which they were sent). */
function oldestPendingPerWorker(round: ActiveRound): [number, Assignment][] {
  const oldest = new Map<WorkerConnection, [number, Assignment]>();
  for (const [shard, assignment] of round.assignments) {
    if (!oldest.has(assignment.worker)) oldest.set(assignment.worker, [shard, assignment]);
  }
  return [...oldest.values()];
}

/** A worker's text on one log line: its control characters (newlines among them) as spaces. */
function oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it replaces
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
}
