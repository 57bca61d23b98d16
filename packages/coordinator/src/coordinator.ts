import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import {
  assertFiniteShard,
  CallosumError,
  createMsgpackCodec,
  type ErrorCode,
  ErrorCodes,
  fromWireTensor,
  type GradientResult,
  PROTOCOL_VERSION,
  readsTensorFrames,
  reductionFor,
  saveModel,
  type WorkerMessage,
  writeFlatWeights,
} from '@callosum/core';
import type WebSocket from 'ws';
import { describeRound, RoundIds } from './dispatch/round-id.js';
import { ShardDispatcher } from './dispatch/shard-dispatcher.js';
import type { CoordinatorOptions, RunSummary } from './options.js';
import { DivergenceWatch } from './run/divergence.js';
import { prepareRun } from './run/prepare-run.js';
import { type EvaluationReply, type GradientReply, Rounds } from './run/rounds.js';
import { RunDirectory } from './run/run-directory.js';
import { TrainingLoop } from './run/training-loop.js';
import { Scope } from './scope.js';
import { type CoordinatorSettings, resolveCoordinatorSettings } from './settings.js';
import type { CoordinatorEvent } from './telemetry/events.js';
import { MetricsFile } from './telemetry/metrics-file.js';
import { Telemetry } from './telemetry/telemetry.js';
import { accessVerifier, authHeaderOf } from './transport/access.js';
import { advertisedUrls } from './transport/advertised-addresses.js';
import { type CloseCode, CloseCodes } from './transport/close-codes.js';
import { startTransport, type Transport } from './transport/server.js';
import { admissionRefusal } from './workers/admission.js';
import { describeError, WorkerConnection } from './workers/connection.js';
import { Liveness } from './workers/liveness.js';
import { WorkerRegistry } from './workers/registry.js';

export interface Coordinator {
  /** ws:// address workers connect to. */
  readonly url: string;
  readonly port: number;
  /** Resolves when the run completes; rejects with the reason it stopped. */
  readonly result: Promise<RunSummary>;
  /**
   * Ends the run early: checkpoints, tells workers COORDINATOR_STOPPING (they wait for a resumed
   * coordinator), closes every connection; the result rejects with that code.
   */
  stop(reason: string): Promise<void>;
}

type MessageHandler<K extends WorkerMessage['type']> = (
  worker: WorkerConnection,
  message: Extract<WorkerMessage, { type: K }>,
) => void;

/** Room for everything in a gradient frame besides the gradient bytes. */
const FRAME_OVERHEAD_BYTES = 64 * 1024;

/**
 * Starts a coordinator: listens for workers and runs synchronous data-parallel training. Owns the
 * dataset, sampler, authoritative weights, optimizer and step counter; workers only compute.
 */
export async function startCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  const settings = resolveCoordinatorSettings(options);
  const runDirectory = await RunDirectory.open({ ...options, log: options.log ?? (() => {}) });
  return startIn(runDirectory, settings, options).catch(async (error: unknown) => {
    await runDirectory.discardUnstarted();
    throw error;
  });
}

async function startIn(
  runDirectory: RunDirectory,
  settings: CoordinatorSettings,
  options: CoordinatorOptions,
): Promise<Coordinator> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const verifier = accessVerifier(settings.host, options.token, options.insecure === true, log);
  let authFailures = 0;
  let refusedConnections = 0;
  const { checkpointDir, resumedFrom, state, dataset, model, layout } = await prepareRun(
    runDirectory,
    options,
    log,
  );
  const scope = new Scope();
  scope.add(() => {
    model.dispose();
  });
  const config = state.config;
  const metricsFile = new MetricsFile(join(options.outDir, 'metrics.jsonl'));
  const telemetry = new Telemetry();
  telemetry.subscribe(metricsFile.write);
  scope.add(() => metricsFile.close());
  if (resumedFrom !== undefined) {
    log(`coordinator: resuming from ${resumedFrom} at step ${state.step} of ${state.totalSteps}`);
    telemetry.record({ type: 'resumed', step: state.step, checkpoint: resumedFrom });
  }

  const runId = runDirectory.runId;
  const codec = createMsgpackCodec();
  const membership = new WorkerRegistry();
  const dispatcher = new ShardDispatcher(membership, {
    shardDeadlineMs: settings.shardDeadlineMs,
    noWorkerTimeoutMs: settings.noWorkerTimeoutMs,
    maxAttemptsPerShard: 5,
    onDeadlineMissed: (worker, shard, round) =>
      evict(
        worker,
        `${describeRound(round)}: shard ${shard} not answered within ${settings.shardDeadlineMs} ms while ${worker.phase}`,
        CloseCodes.EVICTED_UNRESPONSIVE,
        'evicted: shard deadline missed',
        { shard, phase: worker.phase },
      ),
    stragglerFactor: settings.stragglerFactor,
    stragglerFloorMs: settings.stragglerFloorMs,
    onStraggler,
    log,
  });
  const backends = new Set<string>();
  const divergence = new DivergenceWatch();
  const reduction = reductionFor(config, layout.totalSize);
  const rounds = new Rounds({ state, dataset, codec, membership, dispatcher, reduction });
  const loop = new TrainingLoop({
    state,
    rounds,
    counters: dispatcher.counters,
    telemetry,
    checkpointDir,
    checkpointEverySteps: settings.checkpointEverySteps,
    keepCheckpoints: settings.keepCheckpoints,
    onStep: options.onStep,
    onEvaluation: options.onEvaluation,
  });
  let stopRequested: CallosumError | undefined;
  let wakeStart: (() => void) | undefined;

  /** One handler per message type a welcomed worker may send. */
  const handlers: { [K in WorkerMessage['type']]: MessageHandler<K> } = {
    hello: (worker) => dropWorker(worker, CloseCodes.POLICY_VIOLATION, ErrorCodes.UNEXPECTED_MESSAGE),
    heartbeat: (worker, message) => worker.reportedPhase(message.phase, message.step),
    failure: (worker, message) => {
      log(`coordinator: worker ${worker.label} reports ${message.code}: ${message.message}`);
      telemetry.record({ type: 'worker-failure', worker: worker.id, code: message.code });
      // Whatever went wrong, send the weights again with the next request rather than trust its copy.
      worker.forgetWeights();
      if (message.shard === undefined) return;
      if (message.round !== undefined) {
        dispatcher.reject(RoundIds.evaluation(message.round), message.shard, worker, message.code);
      } else if (message.step !== undefined && message.code === ErrorCodes.NON_FINITE) {
        unusableGradient(worker, message.step, message.shard, message.code, message.message);
      } else if (message.step !== undefined) {
        dispatcher.reject(RoundIds.step(message.step), message.shard, worker, message.code);
      }
    },
    gradient: onGradient,
    evaluation: onEvaluation,
  };

  const transport: Transport = await startTransport({
    host: settings.host,
    port: settings.port,
    tls: options.tls,
    maxPayload: layout.totalSize * 4 + FRAME_OVERHEAD_BYTES,
    onConnection,
    connectionRate: settings.connectionRate,
    authenticate: (request) => verifier?.verify(authHeaderOf(request)) ?? { ok: true },
    onRefused(request, status, reason) {
      const peer = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
      if (status === 401) authFailures += 1;
      else refusedConnections += 1;
      // A flood would flood the log too: name the first refusals, then only count them.
      if (authFailures + refusedConnections <= 20)
        log(`coordinator: refused connection from ${peer} (${status}): ${reason}`);
      telemetry.record({
        type: status === 401 ? 'auth-failure' : 'connection-refused',
        peer,
        status,
        reason,
      });
    },
    ready: () => loop.phase !== 'finished',
    status: () => ({
      runId,
      phase: loop.phase,
      step: state.step,
      totalSteps: state.totalSteps,
      epoch: state.position.epoch,
      workers: membership
        .all()
        .map((worker) => ({ ...worker.info, pendingShards: dispatcher.pendingOn(worker) })),
      ...dispatcher.counters,
    }),
  });
  scope.add(() => transport.close());
  log(
    `coordinator: run ${runId} listening on ${advertisedUrls(transport.url).join(', ')}; ${config.model.name}, ${state.totalSteps} steps`,
  );

  const liveness = new Liveness(membership, settings, {
    silent: (worker, silentMs) =>
      evict(
        worker,
        `silent for ${silentMs} ms while ${worker.phase}`,
        CloseCodes.EVICTED_UNRESPONSIVE,
        'evicted: heartbeat timeout',
        { phase: worker.phase },
      ),
    noHello: (worker) => {
      log(
        `coordinator: connection ${worker.label} sent no hello within ${settings.handshakeTimeoutMs} ms; closing`,
      );
      dropWorker(worker, CloseCodes.POLICY_VIOLATION, ErrorCodes.HANDSHAKE_TIMEOUT);
    },
  });
  scope.add(() => liveness.stop());

  function onConnection(socket: WebSocket, request: IncomingMessage): void {
    const address = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
    const worker = new WorkerConnection(
      membership.newWorkerId(),
      address,
      socket,
      codec,
      settings.maxBufferedBytes ?? 4 * (layout.totalSize * 4 + FRAME_OVERHEAD_BYTES),
      (buffered) =>
        evict(
          worker,
          `not reading (${buffered} bytes queued)`,
          CloseCodes.POLICY_VIOLATION,
          ErrorCodes.SLOW_READER,
          {
            bufferedBytes: buffered,
          },
        ),
    );
    membership.add(worker);
    liveness.joining(worker);
    socket.once('close', () => liveness.closed(worker));
    socket.on('message', (frame: Buffer, isBinary: boolean) => onFrame(worker, frame, isBinary));
    socket.on('close', () => dropWorker(worker));
    socket.on('error', (error) => log(`coordinator: worker ${worker.label}: ${error.message}`));
  }

  /** A shard is late: name its worker and what it was doing, and give it no work until it answers. */
  function onStraggler(worker: WorkerConnection, shard: number, pendingMs: number, typicalMs: number): void {
    const step = state.step;
    const doing =
      worker.computingStep === step
        ? 'computing'
        : Date.now() - worker.lastHeardAt > pendingMs
          ? 'receiving'
          : worker.phase;
    log(
      `coordinator: worker ${worker.label} is late: shard ${shard} pending ${Math.round(pendingMs)} ms ` +
        `(others took ${Math.round(typicalMs)} ms) while ${doing}, last heard ${Date.now() - worker.lastHeardAt} ms ago; ` +
        'redoing its shard elsewhere',
    );
    telemetry.record({
      type: 'straggler',
      worker: worker.id,
      name: worker.name,
      address: worker.address,
      shard,
      phase: doing,
      pendingMs,
    });
    if (worker.state === 'healthy') worker.suspected();
  }

  /** Removes a worker for misbehaving: named in the log and the metrics, counted, its shards redone. */
  function evict(
    worker: WorkerConnection,
    why: string,
    closeCode: CloseCode,
    closeReason: string,
    details: Omit<Extract<CoordinatorEvent, { type: 'eviction' }>, 'type' | 'worker' | 'reason'>,
  ): void {
    log(`coordinator: evicting worker ${worker.label}: ${why}; its shards are redone`);
    telemetry.record({ type: 'eviction', worker: worker.id, reason: why, ...details });
    dispatcher.counters.evictions += 1;
    dropWorker(worker, closeCode, closeReason);
  }

  function dropWorker(worker: WorkerConnection, code?: CloseCode, reason?: string): void {
    const wasMember = worker.state !== 'gone';
    if (code !== undefined) void worker.close(code, reason ?? '');
    membership.remove(worker);
    if (wasMember && worker.name) {
      log(`coordinator: worker ${worker.label} left`);
      telemetry.record({ type: 'worker-left', worker: worker.id, reason: reason ?? 'connection closed' });
    }
    dispatcher.workerLost(worker);
  }

  function onFrame(worker: WorkerConnection, frame: Buffer, isBinary: boolean): void {
    if (worker.state === 'gone') {
      // Frames still in flight from a worker this side already dropped.
      dispatcher.counters.discardedMessages += 1;
      return;
    }
    let message: WorkerMessage;
    try {
      if (!isBinary)
        throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, 'text frames are not part of the protocol');
      message = worker.decode(frame);
    } catch (error) {
      const { code, message: text } = describeError(error);
      log(`coordinator: worker ${worker.label}: ${code}: ${text}`);
      telemetry.record({ type: 'rejected-message', worker: worker.id, code });
      dropWorker(worker, CloseCodes.POLICY_VIOLATION, code);
      return;
    }
    if (worker.state === 'joining') {
      welcome(worker, message);
      return;
    }
    if (worker.state === 'suspect') {
      worker.recovered();
      membership.countHealthy();
      log(`coordinator: worker ${worker.label} is responsive again`);
      telemetry.record({ type: 'worker-recovered', worker: worker.id });
      dispatcher.workerAvailable();
    }
    // The table is typed per message type; TypeScript cannot correlate the lookup with the argument.
    (handlers[message.type] as (from: WorkerConnection, received: WorkerMessage) => void)(worker, message);
  }

  function welcome(worker: WorkerConnection, message: WorkerMessage): void {
    if (message.type !== 'hello') {
      dropWorker(worker, CloseCodes.POLICY_VIOLATION, ErrorCodes.UNEXPECTED_MESSAGE);
      return;
    }
    const refusal = admissionRefusal(message, {
      label: worker.label,
      reduction,
      healthyWorkers: membership.healthy().length,
      maxWorkers: settings.maxWorkers,
    });
    if (refusal !== undefined) {
      worker.send({ type: 'shutdown', code: refusal.code, reason: refusal.reason });
      log(`coordinator: ${refusal.logLine}`);
      dropWorker(worker, refusal.closeCode, refusal.code);
      return;
    }
    worker.welcomed({
      name: message.workerName,
      backend: message.backend,
      readsTensorFrames: readsTensorFrames(message.protocol),
    });
    if (reduction.identicalAtAnyWorkerCount && backends.size > 0 && !backends.has(message.backend)) {
      log(
        `coordinator: warning: worker ${worker.label} computes on ${message.backend}, others on ` +
          `${[...backends].join(', ')}; backends round differently, so this run's weights now depend on ` +
          'which worker computes which micro-batches',
      );
    }
    backends.add(message.backend);
    worker.send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      workerId: worker.id,
      runId,
      model: config.model,
      parameterCount: layout.totalSize,
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      ...reduction.settings,
    });
    membership.countHealthy();
    log(
      `coordinator: worker ${worker.label} joined (backend ${worker.backend}); ${membership.healthy().length} healthy`,
    );
    telemetry.record({
      type: 'worker-joined',
      worker: worker.id,
      name: worker.name,
      backend: worker.backend,
    });
    dispatcher.workerAvailable();
    wakeStart?.();
  }

  /**
   * A gradient that must not be applied. Non-finite on every worker, the run has diverged and stops;
   * otherwise the shard is redone (a non-finite one on another worker), and a worker with too many
   * unusable results in a row is evicted.
   */
  function unusableGradient(
    worker: WorkerConnection,
    step: number,
    shard: number,
    code: ErrorCode,
    reason: string,
  ): void {
    const nonFinite = code === ErrorCodes.NON_FINITE;
    if (nonFinite && step === state.step) {
      const computing = membership
        .all()
        .filter((member) => member.state === 'healthy' || member.state === 'suspect');
      if (
        divergence.nonFinite(
          step,
          worker.id,
          computing.map((member) => member.id),
        )
      ) {
        dispatcher.abort(
          new CallosumError(
            ErrorCodes.TRAINING_DIVERGED,
            `training diverged at step ${step + 1} (learning rate ${state.learningRate}): non-finite gradient/loss on every worker`,
          ),
        );
        return;
      }
    }
    dispatcher.reject(RoundIds.step(step), shard, worker, reason, nonFinite);
    const badResults = worker.badResult();
    if (badResults >= settings.maxBadResults) {
      evict(
        worker,
        `${badResults} unusable gradients in a row (${reason})`,
        CloseCodes.POLICY_VIOLATION,
        code,
        { code },
      );
    }
  }

  function onGradient(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'gradient' }>): void {
    let gradient: GradientResult;
    try {
      gradient = {
        gradient: fromWireTensor(message.gradient, 'float32', [layout.totalSize]),
        lossSum: message.lossSum,
        correct: message.correct,
        count: message.count,
      };
      assertFiniteShard(gradient, message.shard, layout.totalSize);
      if (message.correct > message.count) {
        throw new CallosumError(
          ErrorCodes.MALFORMED_MESSAGE,
          `${message.correct} correct of ${message.count}`,
        );
      }
    } catch (error) {
      const { code, message: reason } = describeError(error);
      telemetry.record({
        type: 'rejected-gradient',
        worker: worker.id,
        step: message.step,
        shard: message.shard,
        code,
      });
      unusableGradient(worker, message.step, message.shard, code, reason);
      return;
    }
    worker.goodResult();
    const reply: GradientReply = { gradient, timings: message.timings };
    if (!dispatcher.accept(RoundIds.step(message.step), message.shard, worker, message.count, reply)) {
      telemetry.record({
        type: 'discarded-message',
        worker: worker.id,
        step: message.step,
        shard: message.shard,
      });
    }
  }

  function onEvaluation(
    worker: WorkerConnection,
    message: Extract<WorkerMessage, { type: 'evaluation' }>,
  ): void {
    const round = RoundIds.evaluation(message.round);
    if (message.correct > message.count) {
      telemetry.record({
        type: 'rejected-evaluation',
        worker: worker.id,
        round: message.round,
        shard: message.shard,
      });
      dispatcher.reject(round, message.shard, worker, `${message.correct} correct of ${message.count}`);
      return;
    }
    const totals = { lossSum: message.lossSum, correct: message.correct, count: message.count };
    dispatcher.accept<EvaluationReply>(round, message.shard, worker, message.count, {
      totals,
      timings: message.timings,
    });
  }

  async function waitForWorkers(): Promise<void> {
    const deadline = Date.now() + settings.startTimeoutMs;
    while (membership.healthy().length < settings.minWorkers) {
      if (stopRequested) throw stopRequested;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new CallosumError(
          ErrorCodes.NO_WORKERS,
          `only ${membership.healthy().length} of ${settings.minWorkers} workers joined within ${settings.startTimeoutMs} ms`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wakeStart = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    wakeStart = undefined;
  }

  async function run(): Promise<RunSummary> {
    const started = performance.now();
    await waitForWorkers();
    const totals = await loop.train(() => stopRequested);
    writeFlatWeights(model, state.weights, layout);
    const modelDir = join(options.outDir, 'model');
    await saveModel(model, modelDir);
    const summary: RunSummary = {
      testAccuracy: totals.testAccuracy,
      testLoss: totals.testLoss,
      epochs: state.step / state.sampler.batchesPerEpoch,
      steps: state.step,
      workers: membership.peakHealthy,
      samplesPerSecond: totals.trainedSamples / (totals.trainingMs / 1000),
      backend: [...backends].join(','),
      modelDir,
      metricsFile: metricsFile.path,
      ...dispatcher.counters,
      authFailures,
      refusedConnections,
      seconds: (performance.now() - started) / 1000,
    };
    telemetry.record({ type: 'summary', ...summary });
    await runDirectory.recordSummary(summary);
    return summary;
  }

  async function shutdown(code: ErrorCode, reason: string): Promise<void> {
    liveness.stop();
    const closing = membership.all().map((worker) => {
      worker.send({ type: 'shutdown', code, reason: reason.slice(0, 4000) });
      return worker.close(CloseCodes.NORMAL, 'run ended');
    });
    // Let the shutdown frames drain (a closing handshake), but never wait long for a stuck peer.
    await Promise.race([Promise.all(closing), new Promise((resolve) => setTimeout(resolve, 2_000))]);
    await scope.close();
  }

  const result = run().then(
    async (summary) => {
      await shutdown(ErrorCodes.RUN_ENDED, 'training complete');
      return summary;
    },
    async (error: unknown) => {
      const { code, message } = describeError(error);
      telemetry.record({ type: 'stopped', code, reason: message, step: state.step });
      // Stopped (a signal, no workers left): keep the progress so `--resume` continues from here.
      if (loop.midRun) {
        await loop
          .saveCheckpoint()
          .catch((failure: unknown) => log(`coordinator: could not checkpoint: ${String(failure)}`));
      }
      await shutdown(code, message);
      throw error;
    },
  );

  return {
    url: transport.url,
    port: transport.port,
    result,
    async stop(reason) {
      stopRequested = new CallosumError(ErrorCodes.COORDINATOR_STOPPING, reason);
      dispatcher.abort(stopRequested);
      wakeStart?.();
      await result.catch(() => undefined);
    },
  };
}
