import type { IncomingMessage } from 'node:http';
import {
  CallosumError,
  type Codec,
  type ErrorCode,
  ErrorCodes,
  escapeUnprintable,
  FRAME_FILES_PROTOCOL,
  INSTANCE_HEADER,
  isWorkerInstance,
  PROTOCOL_VERSION,
  protocolAtLeast,
  type Reduction,
  readsTensorFrames,
  type TrainingConfig,
  type WorkerMessage,
} from '@callosum/core';
import type WebSocket from 'ws';
import { describeRound, type RoundId } from '../dispatch/round-id.js';
import type { DispatchFindings, ShardProblem } from '../dispatch/shard-dispatcher.js';
import type { CoordinatorSettings } from '../settings.js';
import type { RunCounters } from '../telemetry/counters.js';
import type { CoordinatorEvent } from '../telemetry/events.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { CONNECTION_CLOSED } from '../telemetry/worker-label.js';
import { type CloseCode, CloseCodes } from '../transport/close-codes.js';
import type { FrameFileDirectory } from '../transport/frame-file-directory.js';
import type { WireTraffic } from '../transport/wire-traffic.js';
import { type AdmissionContext, admissionRefusal } from './admission.js';
import { describeError, WorkerConnection } from './connection.js';
import { EvictionCooldowns } from './eviction-cooldown.js';
import { Liveness } from './liveness.js';
import type { WorkerRegistry } from './registry.js';

/**
 * The run's side of the results a welcomed worker sends. Which were accepted, and which failures were
 * the worker's, the dispatcher reports to the pool (DispatchFindings).
 */
export interface ResultHandlers {
  gradient(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'gradient' }>): void;
  computed(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'computed' }>): void;
  evaluation(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'evaluation' }>): void;
  batchNormResult(
    worker: WorkerConnection,
    message: Extract<WorkerMessage, { type: 'batch-norm-result' }>,
  ): void;
  failure(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'failure' }>): void;
}

/** A ring run's side of what its workers send about their replicas and reductions. */
export interface RingHandlers {
  /** The worker listens for peers: it may be given the run's state and work. */
  listening(worker: WorkerConnection): void;
  reduced(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'reduced' }>): void;
  replicaState(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'replica-state' }>): void;
  failure(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'failure' }>): void;
  /** Whether a failure is about a reduction attempt already given up, and so changes nothing. */
  abandoned(message: Extract<WorkerMessage, { type: 'failure' }>): boolean;
}

export interface WorkerPoolContext {
  readonly settings: CoordinatorSettings;
  readonly runId: string;
  /** A built-in model's spec, or undefined for a task module's run (whose fingerprint is in `task`). */
  readonly model: TrainingConfig['model'] | undefined;
  readonly task: AdmissionContext['task'];
  readonly parameterCount: number;
  /** Largest frame a worker may send; bounds what may queue towards a worker that does not read. */
  readonly maxFrameBytes: number;
  readonly reduction: Reduction;
  /** Whether the run's steps synchronise BatchNormalization (workers must speak 1.7). */
  readonly syncBatchNorm: boolean;
  readonly codec: Codec;
  /** Where the connections count the bytes of their frames. */
  readonly traffic: WireTraffic;
  readonly membership: WorkerRegistry;
  readonly counters: RunCounters;
  readonly telemetry: Telemetry;
  readonly log: (line: string) => void;
  /** The step the run is at, to tell a straggler that is computing it from one that is not. */
  readonly currentStep: () => number;
  readonly results: ResultHandlers;
  /** Set in a ring run (and only then): its workers keep replicas and reduce among themselves. */
  readonly ring: RingHandlers | undefined;
  /** Where large frames to and from workers on this machine go as files; none: all on the sockets. */
  readonly frameFiles: FrameFileDirectory | undefined;
}

type MessageHandler<K extends WorkerMessage['type']> = (
  worker: WorkerConnection,
  message: Extract<WorkerMessage, { type: K }>,
) => void;

/**
 * The workers: takes each connection in, decodes its frames, admits it (hello, version, capacity),
 * watches its liveness, and evicts or drops it. Results go to the run's handlers; who may be given
 * work, and who is gone, the registry announces.
 */
export class WorkerPool implements DispatchFindings {
  private readonly liveness: Liveness;
  private readonly backendsSeen = new Set<string>();
  private readonly cooldowns: EvictionCooldowns;
  /** Each connection's worker process, as its INSTANCE_HEADER names it (1.10+ workers). */
  private readonly instances = new WeakMap<WorkerConnection, string>();

  /** One handler per message type a welcomed worker may send. */
  private readonly handlers: { [K in WorkerMessage['type']]: MessageHandler<K> } = {
    hello: (worker) =>
      this.drop(
        worker,
        CloseCodes.POLICY_VIOLATION,
        ErrorCodes.UNEXPECTED_MESSAGE,
        'sent hello again after joining',
      ),
    heartbeat: (worker, message) => worker.reportedPhase(message.phase, message.step),
    'frame-files': (worker, message) => {
      const { frameFiles, maxFrameBytes, log } = this.context;
      const answer = frameFiles?.accept(worker.id, message.probe, maxFrameBytes) ?? {
        refused: 'sent frame-files, but was offered none',
      };
      if ('refused' in answer) {
        this.drop(worker, CloseCodes.POLICY_VIOLATION, ErrorCodes.UNEXPECTED_MESSAGE, answer.refused);
        return;
      }
      worker.useFrameFiles(answer.link);
      log(`coordinator: worker ${worker.label} exchanges large frames through files in ${frameFiles?.path}`);
    },
    failure: (worker, received) => {
      const { ring } = this.context;
      // Free text the worker chose, which reaches log lines (its own, a rejected shard's, a redone
      // reduction's): escaped once here, so that no newline or bidi override in it forges or hides a line.
      const message = { ...received, message: escapeUnprintable(received.message) };
      // A failure of a ring reduction attempt no longer under way changes nothing: the worker's compute
      // failure that gave the attempt up was reported already, or a newer attempt must not be given up
      // for it. Counted as a discarded message, as a late result is.
      if (ring?.abandoned(message)) {
        this.context.counters.discardedMessages += 1;
        return;
      }
      this.context.telemetry.record({
        type: 'worker-failure',
        ...worker.idNameAddress,
        code: message.code,
        message: message.message,
      });
      // Whatever went wrong, send the weights again with the next request rather than trust its copy.
      // (A ring worker's replica is the weights: it is replaced only if it falls behind.)
      if (ring === undefined) worker.forgetWeights();
      else ring.failure(worker, message);
      this.context.results.failure(worker, message);
    },
    gradient: (worker, message) => {
      if (this.context.ring !== undefined) this.unexpected(worker);
      else this.context.results.gradient(worker, message);
    },
    evaluation: (worker, message) => this.context.results.evaluation(worker, message),
    'batch-norm-result': (worker, message) => this.context.results.batchNormResult(worker, message),
    computed: (worker, message) => {
      if (this.context.ring === undefined) this.unexpected(worker);
      else this.context.results.computed(worker, message);
    },
    'peer-listening': (worker, message) => {
      const { ring } = this.context;
      if (ring === undefined) return this.unexpected(worker);
      worker.listensAt(message.address);
      ring.listening(worker);
    },
    reduced: (worker, message) => this.ringOnly(worker)?.reduced(worker, message),
    'replica-state': (worker, message) => this.ringOnly(worker)?.replicaState(worker, message),
  };

  constructor(private readonly context: WorkerPoolContext) {
    const { settings, log } = context;
    this.cooldowns = new EvictionCooldowns(settings.evictionCooldownMs);
    this.liveness = new Liveness(context.membership, settings, {
      silent: (worker, silentMs) =>
        this.evict(
          worker,
          `silent for ${silentMs} ms (last heard while ${worker.phase})`,
          CloseCodes.EVICTED_UNRESPONSIVE,
          'evicted: heartbeat timeout',
          { phase: worker.phase },
        ),
      noHello: (worker) => {
        log(
          `coordinator: connection ${worker.label} sent no hello within ${settings.handshakeTimeoutMs} ms; closing`,
        );
        this.drop(worker, CloseCodes.POLICY_VIOLATION, ErrorCodes.HANDSHAKE_TIMEOUT);
      },
    });
  }

  /** The backends the welcomed workers compute on, in the order they were first seen. */
  get backends(): readonly string[] {
    return [...this.backendsSeen];
  }

  /** A new connection: a worker that must say hello within the handshake timeout. */
  connected(socket: WebSocket, request: IncomingMessage): void {
    const { membership, codec, settings, maxFrameBytes, log } = this.context;
    const address = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
    const instance = request.headers[INSTANCE_HEADER];
    const worker = new WorkerConnection(
      membership.newWorkerId(),
      address,
      socket,
      codec,
      this.context.traffic,
      settings.maxBufferedBytes ?? 4 * maxFrameBytes,
      // Found while something is sending to it (the dispatcher, mid-assignment): evict once that
      // call has returned, not in the middle of it. Until then the connection sends nothing more.
      (buffered) =>
        queueMicrotask(() =>
          this.evict(
            worker,
            `not reading (${buffered} bytes queued)`,
            CloseCodes.POLICY_VIOLATION,
            ErrorCodes.SLOW_READER,
            { bufferedBytes: buffered },
          ),
        ),
      request.socket,
    );
    if (isWorkerInstance(instance)) this.instances.set(worker, instance);
    membership.add(worker);
    this.liveness.joining(worker);
    socket.once('close', () => this.liveness.closed(worker));
    socket.on('message', (frame: Buffer, isBinary: boolean) => this.onFrame(worker, frame, isBinary));
    socket.on('close', () => this.drop(worker));
    socket.on('error', (error) => log(`coordinator: worker ${worker.label}: ${error.message}`));
  }

  /** The dispatcher's finding: a shard was not answered within the deadline. */
  missedDeadline(worker: WorkerConnection, shard: number, round: RoundId): void {
    this.evict(
      worker,
      `${describeRound(round)}: shard ${shard} not answered within ${this.context.settings.shardDeadlineMs} ms while ${worker.phase}`,
      CloseCodes.EVICTED_UNRESPONSIVE,
      'evicted: shard deadline missed',
      { shard, phase: worker.phase },
    );
  }

  /**
   * A shard is late: name its worker and what it was doing, and give it no work until it answers. Late
   * on `maxLateShards` shards in a row with no result accepted between them, it is evicted: a worker
   * that heartbeats but never answers (a hung compute thread) would otherwise be set aside and taken
   * back again every step, holding every step up by the straggler deadline.
   */
  straggler(worker: WorkerConnection, shard: number, pendingMs: number, typicalMs: number): void {
    const step = this.context.currentStep();
    const lastHeardMs = Math.max(0, Date.now() - worker.lastHeardAt);
    const doing =
      worker.computingStep === step ? 'computing' : lastHeardMs > pendingMs ? 'receiving' : worker.phase;
    this.context.telemetry.record({
      type: 'straggler',
      ...worker.idNameAddress,
      shard,
      phase: doing,
      pendingMs,
      typicalMs,
      lastHeardMs,
    });
    const late = worker.lateShard();
    if (late >= this.context.settings.maxLateShards) {
      this.evict(
        worker,
        `late on ${late} shards in a row without a result accepted in between (last: shard ${shard}, pending ${Math.round(pendingMs)} ms while ${doing})`,
        CloseCodes.EVICTED_UNRESPONSIVE,
        'evicted: late too often',
        { shard, phase: doing },
      );
    } else if (worker.state === 'healthy') {
      worker.suspected();
    }
  }

  /** The dispatcher accepted a result of the worker's: it is neither late nor failing in a row. */
  delivered(worker: WorkerConnection, round: RoundId): void {
    worker.delivered(round.kind !== 'evaluation');
  }

  /**
   * A shard the worker failed or answered unusably was computed by another worker. `maxBadResults` of
   * those in a row evict it (evaluations do not count). A shard that no worker computes counts against
   * none: the run stops with it instead (the dispatcher's COMPUTE_FAILED).
   */
  failedShard(worker: WorkerConnection, round: RoundId, shard: number, problem: ShardProblem): void {
    if (round.kind === 'evaluation' || worker.state === 'gone') return;
    const bad = worker.badResult();
    if (bad < this.context.settings.maxBadResults) return;
    this.evictForResults(
      worker,
      `${bad} shards in a row failed or answered unusably, each computed by another worker (last: ${describeRound(round)}, shard ${shard}: ${problem.reason.slice(0, 1000)})`,
      CloseCodes.POLICY_VIOLATION,
      problem.code,
      { code: problem.code },
    );
  }

  /** The ring's handlers, or none (the worker dropped) in a star run, where ring messages have no place. */
  private ringOnly(worker: WorkerConnection): RingHandlers | undefined {
    if (this.context.ring === undefined) this.unexpected(worker);
    return this.context.ring;
  }

  private unexpected(worker: WorkerConnection): void {
    this.drop(worker, CloseCodes.POLICY_VIOLATION, ErrorCodes.UNEXPECTED_MESSAGE);
  }

  /** Stops the liveness checks. */
  stop(): void {
    this.liveness.stop();
  }

  /** Ends the run for every worker: a shutdown message, then a normal close; resolves when all closed. */
  async closeAll(code: ErrorCode, reason: string): Promise<void> {
    this.liveness.stop();
    await Promise.all(
      this.context.membership.all().map((worker) => {
        worker.send({ type: 'shutdown', code, reason: reason.slice(0, 4000) });
        return worker.close(CloseCodes.NORMAL, 'run ended');
      }),
    );
  }

  /**
   * evict, for results that failed or could not be used: the worker process is refused for a while if it
   * connects again (EvictionCooldowns), when it says which process it is (INSTANCE_HEADER). Not for
   * lateness: a worker slowed down by its machine is an honest one, to be taken back.
   */
  private evictForResults(...[worker, why, ...rest]: Parameters<WorkerPool['evict']>): void {
    if (worker.state === 'gone') return;
    const instance = this.instances.get(worker);
    const cooldownMs = instance === undefined ? 0 : this.cooldowns.evicted(instance, why);
    const refused =
      cooldownMs > 0 ? `; refused for ${Math.ceil(cooldownMs / 1000)} s if it connects again` : '';
    this.evict(worker, `${why}${refused}`, ...rest);
  }

  /** Why the worker's process may not join yet, if it was evicted for its results (EvictionCooldowns). */
  private cooldownOf(worker: WorkerConnection): string | undefined {
    const instance = this.instances.get(worker);
    return instance === undefined ? undefined : this.cooldowns.refusal(instance);
  }

  /** Removes a worker for misbehaving: named in the log and the metrics, counted, its shards redone. */
  private evict(
    worker: WorkerConnection,
    why: string,
    closeCode: CloseCode,
    closeReason: string,
    details: Omit<
      Extract<CoordinatorEvent, { type: 'eviction' }>,
      'type' | keyof WorkerConnection['idNameAddress'] | 'reason'
    >,
  ): void {
    // Findings can race (a missed deadline and the heartbeat timeout): a worker is evicted once.
    if (worker.state === 'gone') return;
    this.context.telemetry.record({ type: 'eviction', ...worker.idNameAddress, reason: why, ...details });
    this.context.counters.evictions += 1;
    this.drop(worker, closeCode, closeReason);
  }

  /**
   * Closes a worker's connection (with `code` and `reason`, an error code, when this side ends it) and
   * records that it left; `detail` says what it did, for the record only.
   */
  private drop(worker: WorkerConnection, code?: CloseCode, reason?: string, detail?: string): void {
    const { membership, telemetry } = this.context;
    const wasMember = worker.state !== 'gone';
    if (code !== undefined) void worker.close(code, reason ?? '');
    membership.remove(worker);
    this.context.frameFiles?.release(worker.id);
    if (wasMember && worker.name) {
      const why = reason ?? CONNECTION_CLOSED;
      telemetry.record({
        type: 'worker-left',
        ...worker.idNameAddress,
        reason: detail === undefined ? why : `${why}: ${detail}`,
      });
    }
  }

  private onFrame(worker: WorkerConnection, frame: Buffer, isBinary: boolean): void {
    const { membership, counters, telemetry } = this.context;
    if (worker.state === 'gone') {
      // Frames still in flight from a worker this side already dropped, and any files they stand for.
      counters.discardedMessages += 1;
      this.context.frameFiles?.release(worker.id);
      return;
    }
    let message: WorkerMessage;
    try {
      if (!isBinary)
        throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, 'text frames are not part of the protocol');
      message = worker.decode(frame);
    } catch (error) {
      const { code, message: text } = describeError(error);
      telemetry.record({ type: 'rejected-message', ...worker.idNameAddress, code, message: text });
      this.drop(worker, CloseCodes.POLICY_VIOLATION, code);
      return;
    }
    if (worker.state === 'joining') {
      this.welcome(worker, message);
      return;
    }
    if (worker.state === 'suspect') {
      worker.recovered();
      telemetry.record({ type: 'worker-recovered', ...worker.idNameAddress });
      // A ring worker that missed a step while suspect gets the current state before more work.
      if (this.context.ring !== undefined && !worker.holdsWeights(this.context.currentStep())) {
        worker.fellBehind();
      } else {
        membership.available(worker);
      }
    }
    // The table is typed per message type; TypeScript cannot correlate the lookup with the argument.
    (this.handlers[message.type] as (from: WorkerConnection, received: WorkerMessage) => void)(
      worker,
      message,
    );
  }

  private welcome(worker: WorkerConnection, message: WorkerMessage): void {
    const { membership, reduction, settings, log, telemetry } = this.context;
    if (message.type !== 'hello') {
      this.drop(
        worker,
        CloseCodes.POLICY_VIOLATION,
        ErrorCodes.UNEXPECTED_MESSAGE,
        `sent ${message.type} before hello`,
      );
      return;
    }
    const refusal = admissionRefusal(message, {
      label: worker.label,
      topology: this.context.ring === undefined ? 'star' : 'ring',
      healthyWorkers: membership.healthy().length,
      maxWorkers: settings.maxWorkers,
      task: this.context.task,
      wireDtype: settings.wireDtype,
      syncBatchNorm: this.context.syncBatchNorm,
      peerTls: settings.peerTls,
      cooldown: this.cooldownOf(worker),
    });
    if (refusal !== undefined) {
      worker.send({ type: 'shutdown', code: refusal.code, reason: refusal.reason });
      log(`coordinator: ${refusal.logLine}`);
      this.drop(worker, refusal.closeCode, refusal.code);
      return;
    }
    const ring = this.context.ring !== undefined;
    worker.welcomed(
      {
        name: message.workerName,
        backend: message.backend,
        readsTensorFrames: readsTensorFrames(message.protocol),
      },
      ring,
    );
    const backends = this.backendsSeen;
    if (reduction.identicalAtAnyWorkerCount && backends.size > 0 && !backends.has(message.backend)) {
      log(
        `coordinator: warning: worker ${worker.label} computes on ${message.backend}, others on ` +
          `${[...backends].join(', ')}; backends round differently, so this run's weights now depend on ` +
          'which worker computes which micro-batches',
      );
    }
    backends.add(message.backend);
    const frameFiles = protocolAtLeast(message.protocol, FRAME_FILES_PROTOCOL)
      ? this.context.frameFiles?.offer(worker.id)
      : undefined;
    worker.send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      workerId: worker.id,
      runId: this.context.runId,
      ...(this.context.model === undefined
        ? { task: { name: this.context.task.name } }
        : { model: this.context.model }),
      parameterCount: this.context.parameterCount,
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      ...reduction.settings,
      ...(ring ? { topology: 'ring' as const } : {}),
      // Absent means float32, so a float32 run's welcome is what a 1.4 worker knows.
      ...(settings.wireDtype === 'float32' ? {} : { wireDtype: settings.wireDtype }),
      ...(frameFiles === undefined ? {} : { frameFiles }),
    });
    telemetry.record({
      type: 'worker-joined',
      ...worker.idNameAddress,
      backend: worker.backend,
      healthy: membership.healthy().length,
      ...(ring ? { syncing: membership.all().filter((member) => member.state === 'syncing').length } : {}),
    });
    // A ring worker gets work once it listens for peers and holds the run's state.
    if (!ring) membership.available(worker);
  }
}
