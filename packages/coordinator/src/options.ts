import type { DatasetSource, StepEvent, Task, TrainingOverrides, WireDtype } from '@callosum/core';
import type { Topology } from './settings.js';
import type { StepBytes } from './telemetry/step-bytes.js';
import type { ServerTlsOptions } from './transport/server.js';

/** A step as trainLocal reports it (samplesPerSecond: global, over this step), plus where time went. */
export interface StepReport extends StepEvent {
  readonly workers: number;
  /** Per worker: samples, time computing (as the worker measured), moving data, and waiting for others. */
  readonly perWorker: readonly {
    id: string;
    samples: number;
    computeMs: number;
    transferMs: number;
    waitMs: number;
  }[];
  /** Reducing gradients and applying the optimizer on the coordinator. */
  readonly updateMs: number;
  readonly stepMs: number;
  /** What the step moved over the wire: all of the coordinator's frames, and the busiest worker's. */
  readonly bytes: StepBytes;
  /** When each part of the step happened, for a timeline (--trace): durations and offsets from its start. */
  readonly timeline: {
    /**
     * Drawing the batch, planning and gathering the shards' samples (and with the config's
     * `batchNorm: 'sync'`, the step's BatchNormalization passes).
     */
    readonly prepareMs: number;
    /** Sending the weights and the first shards to every worker. */
    readonly broadcastMs: number;
    /** updateMs is reduceMs (the mean gradient) plus optimizerMs (applying it). */
    readonly reduceMs: number;
    readonly optimizerMs: number;
    /** Per worker: ms after the step started when its first shard was sent and its last answer came. */
    readonly workers: readonly { id: string; sentMs: number; receivedMs: number }[];
  };
}

export interface EvaluationReport {
  readonly epoch: number;
  readonly step: number;
  readonly testLoss: number;
  /** NaN when the task does not measure accuracy. */
  readonly testAccuracy: number;
  /** Every metric of the task by name, accuracy included when measured. */
  readonly testMetrics: Readonly<Record<string, number>>;
  readonly count: number;
  /** How long the evaluation pass took. */
  readonly evaluationMs: number;
}

/** Where a run reports on itself as it goes. */
export interface RunCallbacks {
  readonly log?: (line: string) => void;
  /** Called after every step; the next step waits for a promise it returns. */
  readonly onStep?: (report: StepReport) => void | Promise<void>;
  /** Called after every evaluation; training waits for a promise it returns (e.g. saving the model). */
  readonly onEvaluation?: (report: EvaluationReport) => void | Promise<void>;
}

export interface CoordinatorOptions extends DatasetSource, RunCallbacks {
  /** Address to listen on (default 127.0.0.1). */
  readonly host?: string;
  /** Port to listen on; 0 picks a free one (default). */
  readonly port?: number;
  /**
   * Shared secret workers must prove they know (HMAC on the upgrade request, docs/protocol.md). Without
   * one, the coordinator refuses to listen on anything but a loopback address unless `insecure` is set.
   */
  readonly token?: string;
  /**
   * Print the dashboard's URL with the token in it (`?token=…`, as Jupyter does). Only for a token
   * made for this run alone (`callosum train`'s): any other would be copied into logs. Default false.
   */
  readonly tokenInDashboardUrl?: boolean;
  /** Allow listening beyond loopback without a token (any peer that can connect may join). */
  readonly insecure?: boolean;
  /** Serve wss:// with this certificate and key (PEM); with `clientCa`, require client certificates. */
  readonly tls?: ServerTlsOptions;
  /**
   * What to train: a task (loadTaskModule's), whose defaults `training` overrides. Without one, the
   * built-in `training.model` (default cnn) on MNIST-format data (`dataDir`, `dataset`).
   */
  readonly task?: Task;
  /**
   * The run's training config, over the task's defaults; a resumed run keeps its checkpoint's. Its
   * `batchNorm: 'sync'` normalises every shard of a step with the whole batch's BatchNormalization
   * statistics (SyncBatchNorm; docs/tasks.md), so the run computes what one process training on that
   * batch computes, at the cost of two extra passes per layer over the shards each step, from workers
   * speaking protocol 1.7.
   */
  readonly training?: TrainingOverrides;
  /**
   * Run directory: the final model goes to `<outDir>/model`, the metrics log to `<outDir>/metrics.jsonl`,
   * checkpoints to `<outDir>/checkpoints`, the finished run's summary to `<outDir>/summary.json`. It
   * belongs to one run (`<outDir>/callosum-run.json` says which); a new run refuses a directory that holds
   * another run's files. A new run that stops before its first step removes its files again.
   */
  readonly outDir: string;
  /**
   * Continue the run in outDir from its newest intact checkpoint (its config wins over `training`). When
   * that checkpoint's step ended an epoch whose evaluation the run's metrics.jsonl does not hold (the
   * run stopped during it), that evaluation is done first.
   */
  readonly resume?: boolean;
  /**
   * A new run in an outDir that holds another run's files moves those files aside (into
   * `<outDir>/replaced-<time>`) instead of being refused. Runs never share a directory.
   */
  readonly overwrite?: boolean;
  /**
   * Gives up the start when aborted (a Ctrl-C): a task's data that takes long to load, or never loads,
   * is not waited for, and startCoordinator rejects with COORDINATOR_STOPPING, having removed what it
   * created. Once started, stop the run with `Coordinator.stop`.
   */
  readonly signal?: AbortSignal;
  /**
   * Checkpoint every this many steps, besides at each epoch end and when stopped (default 100). Stored
   * with the run (`<outDir>/callosum-run.json`): a resumed run keeps the stored interval unless this is
   * given, which then applies and is stored.
   */
  readonly checkpointEverySteps?: number;
  /** How many checkpoints to keep (default 3). */
  readonly keepCheckpoints?: number;
  /** Training starts once this many workers are healthy (default 1). */
  readonly minWorkers?: number;
  /** Further workers are refused (RUN_FULL, close 1013) while this many are healthy (default: no limit). */
  readonly maxWorkers?: number;
  /** How long to wait for minWorkers at the start (default 10 min, as the CLI). */
  readonly startTimeoutMs?: number;
  /** How long a step may wait with no healthy worker before the run stops (default 60 s). */
  readonly noWorkerTimeoutMs?: number;
  /** Heartbeat interval asked of workers (default 1 s). */
  readonly heartbeatIntervalMs?: number;
  /** Upgrade attempts per remote address: `burst` at once, then `perSecond` (default 64, then 20/s). */
  readonly connectionRate?: { readonly perSecond: number; readonly burst: number };
  /**
   * A worker is evicted once this many shards in a row that it failed (a `failure` reply) or answered
   * unusably (NaN/Inf, wrong length or sample count) were computed by another worker (default 3).
   */
  readonly maxBadResults?: number;
  /**
   * A worker is evicted once it has been late (past the straggler deadline) on this many shards in a row
   * with none of its results accepted in between (default 3).
   */
  readonly maxLateShards?: number;
  /**
   * A worker process evicted for failed or unusable results (maxBadResults) that connects again is
   * refused (EVICTION_COOLDOWN, close 1013) for this long, doubled at each further eviction of that
   * process, at most 10 minutes (default 30 s; 0 takes it back at once). The process is the one its
   * upgrade request's instance header names (1.10 workers); older workers are taken back at once.
   * Evictions for silence or lateness are not held against a worker.
   */
  readonly evictionCooldownMs?: number;
  /** A connection that has not sent `hello` this long after connecting is closed (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /**
   * Bytes that may wait unsent, or unread in frame files, for one worker before it is dropped as not
   * reading (default: four weights frames). ws would otherwise queue without bound for a peer that
   * stopped reading.
   */
  readonly maxBufferedBytes?: number;
  /** A worker silent this long is evicted (default 30 s; compute blocks a worker's heartbeats). */
  readonly heartbeatTimeoutMs?: number;
  /** A shard not answered within this time is redone elsewhere and its worker evicted (default 120 s). */
  readonly shardDeadlineMs?: number;
  /**
   * A shard is late once its worker has been on it this many times what the median time per sample of
   * its round's answered shards predicts for its size (default 4), and at least stragglerFloorMs
   * (default 2 s): its worker is named, gets no work until it answers again, and the shard is redone
   * elsewhere.
   */
  readonly stragglerFactor?: number;
  readonly stragglerFloorMs?: number;
  /**
   * `star` (default): every step, the workers send their gradients here and receive the new weights.
   * `ring`: the workers reduce gradients among themselves and keep replicas of the weights and optimizer
   * state; the coordinator sends the data and keeps membership, evaluation and checkpoints. Stored with
   * the run, as checkpointEverySteps is: a resumed run keeps its topology unless this is given.
   */
  readonly topology?: Topology;
  /**
   * Ring: every this many steps the workers' replicas are compared (a digest of their weights, sent with
   * the reduction); one that differs from the others is named and replaced, and that step redone.
   */
  readonly replicaCheckEverySteps?: number;
  /**
   * Ring: the workers reduce over TLS among themselves (default false). Each must be started with the
   * peers' CA and a certificate it signed (`peerTls`; `callosum worker --peer-tls-ca`); a worker whose
   * peer links differ from the run's is refused (PEER_TLS_MISMATCH), as links between the two kinds
   * could not open.
   */
  readonly peerTls?: boolean;
  /**
   * The element type weights and gradients travel in (default float32): `float16` or `bfloat16` halve
   * every step's bytes. Only what travels is rounded; the coordinator's weights and optimizer stay
   * float32. Workers learn it from the welcome, and a run in 16 bits refuses workers older than 1.6.
   * In the ring, the peers' gradient rows and mean chunks travel in it (and each rank keeps exactly what
   * it sent, so the replicas stay identical); a replica's state is always sent in float32. Stored with
   * the run: a resumed run keeps it unless this is given.
   */
  readonly wireDtype?: WireDtype;
  /**
   * Write a timeline of every step to this file in the Trace Event Format (Perfetto, chrome://tracing):
   * the coordinator's prepare, broadcast, reduce, optimizer and evaluation, each worker's receive,
   * compute, send and wait.
   */
  readonly traceFile?: string;
  /**
   * Serve the dashboard (`/`, `/events`) and Prometheus metrics (`/metrics`); default true. Without
   * them the port serves the probes and `/status` only (`pnpm bench` measures what they cost).
   */
  readonly liveViews?: boolean;
  /**
   * Let workers on this machine exchange large frames (weights, gradients) through files on /dev/shm
   * instead of the socket (frame files, docs/protocol.md); default true. Workers elsewhere, or without
   * /dev/shm, use the socket either way.
   */
  readonly sharedMemory?: boolean;
}

/**
 * Every option of CoordinatorOptions, for startCoordinator to refuse any other (a misspelt or misplaced
 * option, e.g. a training setting outside `training`). `satisfies` keeps it equal to the interface.
 */
export const COORDINATOR_OPTION_NAMES = {
  dataDir: true,
  dataset: true,
  log: true,
  onStep: true,
  onEvaluation: true,
  host: true,
  port: true,
  token: true,
  tokenInDashboardUrl: true,
  insecure: true,
  tls: true,
  task: true,
  training: true,
  outDir: true,
  resume: true,
  overwrite: true,
  signal: true,
  checkpointEverySteps: true,
  keepCheckpoints: true,
  minWorkers: true,
  maxWorkers: true,
  startTimeoutMs: true,
  noWorkerTimeoutMs: true,
  heartbeatIntervalMs: true,
  connectionRate: true,
  maxBadResults: true,
  maxLateShards: true,
  evictionCooldownMs: true,
  handshakeTimeoutMs: true,
  maxBufferedBytes: true,
  heartbeatTimeoutMs: true,
  shardDeadlineMs: true,
  stragglerFactor: true,
  stragglerFloorMs: true,
  topology: true,
  replicaCheckEverySteps: true,
  peerTls: true,
  wireDtype: true,
  traceFile: true,
  liveViews: true,
  sharedMemory: true,
} as const satisfies Record<keyof CoordinatorOptions, true>;

/** What a finished run reports; also the last stdout line of `callosum train --json`. */
export interface RunSummary {
  /** NaN when the task does not measure accuracy or nothing was evaluated. */
  readonly testAccuracy: number;
  readonly testLoss: number;
  /** Every metric of the task by name (accuracy included when measured), after the last evaluation. */
  readonly testMetrics: Readonly<Record<string, number>>;
  readonly epochs: number;
  readonly steps: number;
  /** Most workers training at the same time. */
  readonly workers: number;
  /**
   * Over the steps this process trained (a resumed run's: since it resumed); NaN when it trained none (a
   * run resumed from its last step's checkpoint, which only evaluates and saves the model).
   */
  readonly samplesPerSecond: number;
  /** Compute backend(s) the workers used, e.g. "wasm". */
  readonly backend: string;
  readonly modelDir: string;
  readonly metricsFile: string;
  readonly redoneShards: number;
  /** Ring runs: how often a step's reduction among the workers was redone (0 in the star). */
  readonly redoneSteps: number;
  readonly lateShards: number;
  /** Connection attempts refused before the upgrade (no, wrong, expired or replayed proof). */
  readonly authFailures: number;
  /** Connection attempts refused for coming too fast from one address. */
  readonly refusedConnections: number;
  readonly discardedMessages: number;
  readonly evictions: number;
  readonly seconds: number;
  /** The mean over this process's steps of each step's bytes (NaN when it trained no step). */
  readonly bytesPerStep: StepBytes;
}
