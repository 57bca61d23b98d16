import {
  type CallosumError,
  counted,
  createMsgpackCodec,
  evaluationOf,
  FRAME_OVERHEAD_BYTES,
  TENSOR_DTYPES,
} from '@callosum/core';
import { dashboardUrls } from './dashboard/dashboard-routes.js';
import { systemClock } from './dispatch/clock.js';
import { type DispatchFindings, ShardDispatcher } from './dispatch/shard-dispatcher.js';
import { attachLiveViews } from './live-views.js';
import type { CoordinatorOptions, RunSummary } from './options.js';
import { startRing } from './ring/ring.js';
import { prepareRun } from './run/prepare-run.js';
import { ResultIntake } from './run/result-intake.js';
import { resumedEvaluation } from './run/resumed-evaluation.js';
import { Rounds } from './run/rounds.js';
import { RunDirectory } from './run/run-directory.js';
import { RunLifecycle } from './run/run-lifecycle.js';
import { StarPath } from './run/star-path.js';
import { StartQuorum } from './run/start-quorum.js';
import { TrainingLoop } from './run/training-loop.js';
import { Scope } from './scope.js';
import { type CoordinatorSettings, resolveCoordinatorSettings } from './settings.js';
import { zeroCounters } from './telemetry/counters.js';
import { eventLog } from './telemetry/event-log.js';
import { MetricsFile } from './telemetry/metrics-file.js';
import { Telemetry } from './telemetry/telemetry.js';
import { TraceFile } from './telemetry/trace-file.js';
import { accessCheck } from './transport/access.js';
import { advertisedUrls } from './transport/advertised-addresses.js';
import { FrameFileDirectory } from './transport/frame-file-directory.js';
import { runRoutes } from './transport/http-routes.js';
import { readAccess } from './transport/read-access.js';
import { Refusals } from './transport/refusals.js';
import { startTransport, type Transport } from './transport/server.js';
import { WireTraffic } from './transport/wire-traffic.js';
import { WorkerRegistry } from './workers/registry.js';
import { ShardDelivery } from './workers/shard-delivery.js';
import { WorkerPool } from './workers/worker-pool.js';

export interface Coordinator {
  /** ws:// address workers connect to. */
  readonly url: string;
  /** http:// address of the run's dashboard (with the token, if any); none with `liveViews: false`. */
  readonly dashboardUrl: string | undefined;
  readonly port: number;
  /** Resolves when the run completes; rejects with the reason it stopped. */
  readonly result: Promise<RunSummary>;
  /**
   * Ends the run early: checkpoints, tells workers COORDINATOR_STOPPING (they wait for a resumed
   * coordinator), closes every connection; the result rejects with that code.
   */
  stop(reason: string): Promise<void>;
  /**
   * Ends training after the step in progress as if the run were complete (early stopping): the model
   * and summary are saved, workers exit successfully, and the result resolves.
   */
  finish(reason: string): void;
  /** Saves the model with its current weights into `dir`; call between steps (from a callback). */
  saveModel(dir: string): Promise<void>;
}

/**
 * Starts a coordinator: listens for workers and runs synchronous data-parallel training. Owns the
 * dataset, sampler, authoritative weights, optimizer and step counter; workers only compute.
 */
export async function startCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  // Before the directory is opened, so that bad options touch nothing; a resumed run keeps its stored
  // settings (topology, wire dtype, checkpoint interval) where the options leave them out.
  const stored = options.resume === true ? await RunDirectory.settingsStoredIn(options.outDir) : {};
  const settings = resolveCoordinatorSettings(options, stored);
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
  const authenticate = accessCheck(settings.host, options.token, options.insecure === true, log);
  const {
    checkpointDir,
    resumedFrom,
    state,
    task,
    taskModel,
    train,
    evaluationSet,
    fingerprint,
    reduction,
    batchNorm,
  } = await prepareRun(runDirectory, options, settings, log);
  const { model, layout } = taskModel;
  const scope = new Scope();
  // Added first, so released last: once the run's files are closed.
  scope.add(() => runDirectory.releaseLock());
  scope.add(() => void model.dispose());
  const config = state.config;
  // A write to the run's record that fails (a full disk) stops the run: RunLifecycle.writeFailed says
  // why. One failing before the lifecycle exists (the first lines are written while the run starts)
  // waits for it.
  let earlyWriteFailure: CallosumError | undefined;
  let writeFailed = (error: CallosumError) => {
    earlyWriteFailure ??= error;
  };
  const recordFiles = { log, onWriteFailed: (error: CallosumError) => writeFailed(error) };
  const metricsFile = new MetricsFile(runDirectory.metricsFile, recordFiles);
  const telemetry = new Telemetry();
  telemetry.subscribe(metricsFile.write);
  telemetry.subscribe(eventLog(log));
  scope.add(() => metricsFile.close());
  let resumed: Awaited<ReturnType<typeof resumedEvaluation>>;
  try {
    if (options.traceFile !== undefined) {
      const trace = new TraceFile(options.traceFile, recordFiles);
      telemetry.subscribe(trace.sink);
      scope.add(() => trace.close());
    }
    if (resumedFrom !== undefined) {
      telemetry.record({
        type: 'resumed',
        step: state.step,
        totalSteps: state.totalSteps,
        checkpoint: resumedFrom,
      });
    }
    // A record that cannot be written (a full disk) fails the start, before any worker waits for it.
    await metricsFile.flushed();
    // Whether the run owes the evaluation of its checkpoint's step: read once the file is known to be a
    // writable record (its unfinished last line cut), and before any evaluation of this process is in it.
    resumed =
      resumedFrom === undefined
        ? undefined
        : await resumedEvaluation(state, runDirectory.metricsFile, evaluationSet !== undefined);
  } catch (error) {
    await scope.close();
    throw error;
  }

  const runId = runDirectory.runId;
  // The largest frame a worker sends: a gradient in the run's wire dtype, or in a ring run its whole
  // replica (weights and optimizer slots, float32) when asked for it.
  const replicaVectors =
    settings.topology === 'ring' ? 1 + Object.keys(state.optimizer.exportState().slots).length : 0;
  const maxFrameBytes =
    Math.max(layout.totalSize * TENSOR_DTYPES[settings.wireDtype], replicaVectors * layout.totalSize * 4) +
    FRAME_OVERHEAD_BYTES;
  const codec = createMsgpackCodec();
  const membership = new WorkerRegistry();
  const counters = zeroCounters();
  const traffic = new WireTraffic();
  const views =
    options.liveViews === false
      ? undefined
      : attachLiveViews(telemetry, { membership, counters, traffic, title: `Callosum: run ${runId}` });
  // The pool (the findings' receiver) is built below, once the transport it takes connections from exists.
  const findings: DispatchFindings = {
    missedDeadline: (...finding) => workers.missedDeadline(...finding),
    straggler: (...finding) => workers.straggler(...finding),
    delivered: (...finding) => workers.delivered(...finding),
    failedShard: (...finding) => workers.failedShard(...finding),
  };
  const ringRun = settings.topology === 'ring';
  const sender = new ShardDelivery(
    state,
    codec,
    { wireDtype: settings.wireDtype, unsendable: (error) => dispatcher.abort(error) },
    ringRun,
  );
  const seams = { membership, sender, findings, counters, clock: systemClock, log };
  const dispatcher = new ShardDispatcher(seams, settings);
  if (reduction.identicalAtAnyWorkerCount && settings.wireDtype !== 'float32') {
    log(
      `coordinator: warning: gradients travel as ${settings.wireDtype}, rounded where each shard was computed, ` +
        'so the weights of this run with micro-batches depend on the worker count',
    );
  }
  if (settings.peerTls && options.tls === undefined) {
    log(
      'coordinator: warning: the workers reduce over TLS (--peer-tls), but this port serves plain ws://: ' +
        'shards, evaluations and replica states still travel to and from the workers in the clear (--tls-cert, --tls-key)',
    );
  }
  const ring = ringRun
    ? startRing({
        state,
        membership,
        telemetry,
        settings,
        log,
        datasetSize: train.count,
        stateLost: (error) => dispatcher.abort(error),
      })
    : undefined;
  const rounds = new Rounds({
    state,
    train,
    evaluationSet,
    membership,
    dispatcher,
    reduction,
    gradients: ring?.path ?? new StarPath(state, reduction),
    telemetry,
    counters,
    objective: taskModel.objective,
    traffic,
    batchNorm,
  });
  const currentState = async () => ring?.replicas.refresh();
  const loop = new TrainingLoop({
    state,
    rounds,
    counters,
    telemetry,
    checkpointDir,
    checkpointEverySteps: settings.checkpointEverySteps,
    keepCheckpoints: settings.keepCheckpoints,
    onStep: options.onStep,
    onEvaluation: options.onEvaluation,
    evaluationOf: (totals) => evaluationOf(totals, taskModel),
    currentState,
    resumedEvaluation: resumed,
    checkpointedStep: resumedFrom === undefined ? undefined : state.step,
    log,
  });
  const quorum = new StartQuorum(membership, settings);
  const refusals = new Refusals(telemetry);

  const transport: Transport = await startTransport({
    host: settings.host,
    port: settings.port,
    tls: options.tls,
    maxPayload: maxFrameBytes,
    onConnection: (socket, request) => workers.connected(socket, request),
    connectionRate: settings.connectionRate,
    authenticate,
    onRefused: (request, status, reason) => refusals.refused(request, status, reason),
    onTlsRefused: (from, reason) => refusals.tlsRefused(from, reason),
    routes: {
      ...runRoutes({ ready: () => loop.phase !== 'finished', status: () => lifecycle.status() }),
      ...views?.routes,
    },
    authorizeRead: readAccess(options.token),
  });
  scope.add(() => transport.close());
  // Released before the transport, so the pages' streams end cleanly with everything written.
  scope.add(() => views?.close());
  log(
    `coordinator: run ${runId} listening on ${advertisedUrls(transport.url).join(', ')}; ${task.name}, ${counted(state.totalSteps, 'step')}`,
  );
  if (config.maxSteps !== undefined && config.maxSteps > state.totalSteps) {
    log(
      `coordinator: warning: ${config.maxSteps} steps asked for, but ${counted(config.epochs, 'epoch')} hold ${state.totalSteps}: training stops there (more epochs train longer)`,
    );
  }
  // The handle's URL carries the token (it is the caller's own); the log's only when asked to.
  const dashboardAt = views === undefined ? [] : dashboardUrls(transport.url, options.token);
  if (views !== undefined) {
    const hidden = options.token !== undefined && options.tokenInDashboardUrl !== true;
    const logged = hidden ? dashboardUrls(transport.url, undefined) : dashboardAt;
    log(
      `coordinator: dashboard at ${logged.join(', ')}${hidden ? " (open it with ?token=<the run's token>)" : ''}`,
    );
  }

  // Made once the port is ours: a start that fails before leaves nothing in /dev/shm.
  const frameFiles = options.sharedMemory === false ? undefined : FrameFileDirectory.open(log);
  scope.add(() => frameFiles?.close());
  const workers = new WorkerPool({
    settings,
    runId,
    model: fingerprint === undefined ? config.model : undefined,
    task: { name: task.name, fingerprint },
    parameterCount: layout.totalSize,
    maxFrameBytes,
    reduction,
    syncBatchNorm: batchNorm !== undefined,
    codec,
    traffic,
    membership,
    counters,
    telemetry,
    log,
    currentStep: () => state.step,
    results: new ResultIntake({
      state,
      membership,
      dispatcher,
      telemetry,
      parameterCount: layout.totalSize,
      metricCount: taskModel.objective.metricNames.length,
      wireDtype: settings.wireDtype,
      batchNorm,
    }),
    ring: ring?.handlers,
    frameFiles,
  });
  scope.add(() => workers.stop());

  const lifecycle = new RunLifecycle({
    outDir: options.outDir,
    runDirectory,
    state,
    model,
    layout,
    quorum,
    loop,
    membership,
    dispatcher,
    counters,
    workers,
    refusals,
    telemetry,
    metricsPath: metricsFile.path,
    currentState,
    reduction: ring === undefined ? undefined : () => ring.reduction.waitingFor,
    scope,
    log,
  });
  writeFailed = (error) => lifecycle.writeFailed(error);
  if (earlyWriteFailure !== undefined) lifecycle.writeFailed(earlyWriteFailure);
  return {
    url: transport.url,
    dashboardUrl: dashboardAt[0],
    port: transport.port,
    result: lifecycle.result,
    stop: (reason) => lifecycle.stop(reason),
    finish: (reason) => lifecycle.finish(reason),
    saveModel: (dir) => lifecycle.saveModelTo(dir),
  };
}
