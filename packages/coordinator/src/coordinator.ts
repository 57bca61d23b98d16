import { join } from 'node:path';
import {
  CallosumError,
  createMsgpackCodec,
  type ErrorCode,
  ErrorCodes,
  reductionFor,
  saveModel,
  writeFlatWeights,
} from '@callosum/core';
import { ShardDispatcher } from './dispatch/shard-dispatcher.js';
import type { CoordinatorOptions, RunSummary } from './options.js';
import { prepareRun } from './run/prepare-run.js';
import { ResultIntake } from './run/result-intake.js';
import { Rounds } from './run/rounds.js';
import { RunDirectory } from './run/run-directory.js';
import { TrainingLoop } from './run/training-loop.js';
import { Scope } from './scope.js';
import { type CoordinatorSettings, resolveCoordinatorSettings } from './settings.js';
import { MetricsFile } from './telemetry/metrics-file.js';
import { Telemetry } from './telemetry/telemetry.js';
import { accessVerifier, authHeaderOf } from './transport/access.js';
import { advertisedUrls } from './transport/advertised-addresses.js';
import { startTransport, type Transport } from './transport/server.js';
import { describeError } from './workers/connection.js';
import { WorkerRegistry } from './workers/registry.js';
import { WorkerPool } from './workers/worker-pool.js';

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
  const maxFrameBytes = layout.totalSize * 4 + FRAME_OVERHEAD_BYTES;
  const codec = createMsgpackCodec();
  const membership = new WorkerRegistry();
  const dispatcher = new ShardDispatcher(membership, {
    shardDeadlineMs: settings.shardDeadlineMs,
    noWorkerTimeoutMs: settings.noWorkerTimeoutMs,
    maxAttemptsPerShard: 5,
    onDeadlineMissed: (worker, shard, round) => workers.deadlineMissed(worker, shard, round),
    stragglerFactor: settings.stragglerFactor,
    stragglerFloorMs: settings.stragglerFloorMs,
    onStraggler: (worker, shard, pendingMs, typicalMs) =>
      workers.straggler(worker, shard, pendingMs, typicalMs),
    log,
  });
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

  const transport: Transport = await startTransport({
    host: settings.host,
    port: settings.port,
    tls: options.tls,
    maxPayload: maxFrameBytes,
    onConnection: (socket, request) => workers.connected(socket, request),
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

  const workers = new WorkerPool({
    settings,
    runId,
    model: config.model,
    parameterCount: layout.totalSize,
    maxFrameBytes,
    reduction,
    codec,
    membership,
    dispatcher,
    telemetry,
    log,
    currentStep: () => state.step,
    results: new ResultIntake({ state, membership, dispatcher, telemetry, parameterCount: layout.totalSize }),
    joined: () => wakeStart?.(),
  });
  scope.add(() => workers.stop());

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
      backend: workers.backends.join(','),
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
    // Let the shutdown frames drain (a closing handshake), but never wait long for a stuck peer.
    await Promise.race([
      workers.closeAll(code, reason),
      new Promise((resolve) => setTimeout(resolve, 2_000)),
    ]);
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
