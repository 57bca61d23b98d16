import { z } from 'zod';
import { ErrorCodes } from '../errors.js';
import { unprintableNameProblem } from './printable.js';
import { elementCount, TENSOR_DTYPES } from './tensor.js';
import { WIRE_DTYPES } from './wire-dtype.js';

/**
 * Every message of the wire protocol, defined once: both sides import these schemas and the types
 * inferred from them. Strict objects: an unknown field is an error, so a typo or an injection
 * attempt never passes silently. docs/protocol.md describes the same messages for other languages.
 */

const MAX_RANK = 8;
/** The longest name (a worker's, its backend's, its host's) the protocol carries. */
export const MAX_NAME_LENGTH = 256;
const MAX_TEXT_LENGTH = 4096;

const count = z.int().min(0);
const index = z.int().min(0);
const name = z.string().min(1).max(MAX_NAME_LENGTH);
/**
 * A name a worker gives about itself, which the coordinator writes into its log: no control character,
 * line separator or bidi override (printable.ts), so it cannot forge or disguise a log line. A
 * validation tightening, not a new protocol version: no worker sends such a name meaning it.
 */
export const printableName = name.superRefine((text, context) => {
  const problem = unprintableNameProblem(text);
  if (problem !== undefined) context.addIssue({ code: 'custom', message: problem });
});
const text = z.string().max(MAX_TEXT_LENGTH);
const milliseconds = z.number().min(0);
/** A `host:port` a worker listens on for its peers; the host may be a name, an IPv4 or a [bracketed] IPv6 address. */
const peerAddress = z
  .string()
  .max(MAX_NAME_LENGTH)
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/, 'expected host:port');
const bytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected bytes');

export const wireTensorSchema = z
  .strictObject({
    dtype: z.enum(Object.keys(TENSOR_DTYPES) as [keyof typeof TENSOR_DTYPES]),
    shape: z.array(count).max(MAX_RANK),
    bytes,
  })
  .refine((t) => t.bytes.byteLength === elementCount(t.shape) * TENSOR_DTYPES[t.dtype], {
    message: 'byte length does not match dtype and shape',
  });

const protocolVersion = z.strictObject({ major: z.int().min(0), minor: z.int().min(0) });

const modelSpec = z.strictObject({
  name,
  options: z.record(z.string(), z.unknown()).optional(),
});

/** A task's fingerprint (task/fingerprint.ts): plain JSON, compared key by key. */
const fingerprint = z.record(z.string(), z.unknown());

/**
 * Per-sample sums of the task's metrics other than accuracy, in the task's order. Any number, NaN and
 * ±Infinity included: a metric is reported whatever it is (a relative error over a label 0 is
 * Infinity), and never touches the weights. The only numbers of the protocol that may be non-finite
 * (the codec lets them through here alone; z.number() refuses them everywhere else).
 */
const metricSums = z
  .array(z.custom<number>((value) => typeof value === 'number', 'expected a number'))
  .max(256);

/** What a shard's samples add up to, besides its gradient. */
const shardTotals = {
  lossSum: z.number(),
  /** Samples counted correct; fractional for binary accuracy over several outputs. */
  correct: z.number().min(0),
  metricSums,
  count,
};

const errorCode = z.enum(Object.values(ErrorCodes) as [string, ...string[]]);

/** What a worker was doing when it last reported; lets the coordinator name a late worker's phase. */
export const workerPhase = z.enum(['idle', 'receiving', 'computing', 'sending', 'reducing']);

/**
 * Time spent inside the worker. The coordinator counts everything else between sending a request and
 * decoding its reply (encoding, the network, queues) as transfer time.
 */
const computeTimings = z.strictObject({
  /** Reading the request's tensors and loading weights into the model. */
  decodeMs: milliseconds,
  /** Forward and backward pass, including reading the gradient back from the backend. */
  computeMs: milliseconds,
});

// ---- worker → coordinator -------------------------------------------------------------------------

export const helloSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: protocolVersion,
  /** A name for logs (e.g. the pod name); the coordinator assigns the id. */
  workerName: printableName,
  /** The backend the worker computes with (e.g. "wasm", "tensorflow"). */
  backend: printableName,
  pid: z.int().min(0),
  hostname: printableName,
  /** Since 1.4: the fingerprint of the task this worker loaded (`--task`); absent for the built-in models. */
  task: fingerprint.optional(),
  /**
   * Since 1.8: present (true) when this worker serves and dials its ring peers over TLS. A ring run
   * admits only workers that agree with its own setting (`peerTls`).
   */
  peerTls: z.literal(true).optional(),
});

export const gradientSchema = z.strictObject({
  type: z.literal('gradient'),
  step: index,
  shard: index,
  /** Gradient of the summed loss over the shard, one element per parameter, in the run's wire dtype. */
  gradient: wireTensorSchema,
  ...shardTotals,
  timings: computeTimings,
});

/**
 * Since 1.5, ring topology: a shard is computed and its gradient kept on the worker for the reduction
 * among the workers; the coordinator gets its totals.
 */
export const computedSchema = z.strictObject({
  type: z.literal('computed'),
  step: index,
  shard: index,
  ...shardTotals,
  timings: computeTimings,
});

/** Since 1.5, ring: the worker listens for its peers at `address` (sent once, after the welcome). */
export const peerListeningSchema = z.strictObject({
  type: z.literal('peer-listening'),
  address: peerAddress,
});

/**
 * Since 1.5, ring: this worker holds the step's whole mean gradient (it has not applied it yet). With
 * the bytes it sent to and received from its peers in that reduction.
 */
export const reducedSchema = z.strictObject({
  type: z.literal('reduced'),
  step: index,
  attempt: index,
  peerBytes: count,
  reduceMs: milliseconds,
  /** When the reduce asked for it: SHA-256 (hex) of the replica's weights the step was computed with. */
  replicaDigest: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

/** Since 1.5, ring: the worker's replica (a checkpoint's bytes), as the coordinator asked for it. */
export const replicaStateSchema = z.strictObject({
  type: z.literal('replica-state'),
  version: index,
  state: bytes,
});

/**
 * Since 1.7: a pass of a synchronised BatchNormalization step over one shard (train/sync-batch-norm.ts).
 * A moments pass: `values` holds the shard's per-channel means, then its sums of squared deviations, of
 * the layer's input, over `elements` per channel. An adjoint pass: the summed loss's gradient with
 * respect to the layer's means, then its variances.
 */
export const batchNormResultSchema = z.strictObject({
  type: z.literal('batch-norm-result'),
  step: index,
  pass: index,
  shard: index,
  count,
  elements: count.optional(),
  values: wireTensorSchema,
  timings: computeTimings,
});

export const evaluationSchema = z.strictObject({
  type: z.literal('evaluation'),
  round: index,
  shard: index,
  ...shardTotals,
  timings: computeTimings,
});

export const heartbeatSchema = z.strictObject({
  type: z.literal('heartbeat'),
  phase: workerPhase,
  step: index.optional(),
});

export const failureSchema = z.strictObject({
  type: z.literal('failure'),
  code: errorCode,
  message: text,
  /**
   * The request that failed: `step` for a compute request (with `pass` for a BatchNormalization pass,
   * since 1.7), `round` for an evaluation, and its shard.
   */
  step: index.optional(),
  pass: index.optional(),
  round: index.optional(),
  shard: index.optional(),
  /**
   * Since 1.11, sent only to a coordinator of 1.11 or later: the attempt of the ring reduction that
   * failed (a `reduce` the worker could not start, a lost peer link, an invalid peer message). A
   * failure of an attempt already given up changes nothing.
   */
  attempt: index.optional(),
});

/**
 * Since 1.9: this worker read `probe` in the directory of the welcome's `frameFiles`, and takes frames
 * as files from now on (frame-files.ts); it may send its own large frames as files after this message.
 */
export const frameFilesSchema = z.strictObject({
  type: z.literal('frame-files'),
  probe: z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 hex digits'),
});

export const workerMessageSchema = z.discriminatedUnion('type', [
  frameFilesSchema,
  helloSchema,
  gradientSchema,
  evaluationSchema,
  heartbeatSchema,
  failureSchema,
  computedSchema,
  peerListeningSchema,
  reducedSchema,
  replicaStateSchema,
  batchNormResultSchema,
]);

// ---- coordinator → worker -------------------------------------------------------------------------

export const welcomeSchema = z
  .strictObject({
    type: z.literal('welcome'),
    protocol: protocolVersion,
    workerId: name,
    runId: name,
    /** A run of a built-in model: the worker builds it from this spec. */
    model: modelSpec.optional(),
    /** Since 1.4, a run of a task module: the worker computes with the task it loaded (named here). */
    task: z.strictObject({ name }).optional(),
    parameterCount: count,
    /** How often the worker must send a heartbeat while connected. */
    heartbeatIntervalMs: z.int().min(10),
    /**
     * Since 1.3, for runs with deterministic reduction (only sent to 1.3+ workers): every shard of the
     * run is one node of the fixed summation tree; compute each micro-batch of this many samples on its
     * own and add them along the tree. Absent: compute each shard's gradient in one piece.
     */
    microBatchSize: z.int().min(1).optional(),
    /**
     * Since 1.5: `ring`, the workers reduce gradients among themselves and each keeps a replica of the
     * weights and optimizer state. Absent: the star, where the coordinator reduces and applies.
     */
    topology: z.literal('ring').optional(),
    /**
     * Since 1.6, sent only when it is not float32 (and only to 1.6+ workers): the dtype of every
     * `weights` tensor and `gradient` of the run. Absent: float32.
     */
    wireDtype: z.enum(WIRE_DTYPES).optional(),
    /**
     * Since 1.9, only to 1.9+ workers: large frames may travel as files in `dir` (frame-files.ts), if
     * the worker can read `<dir>/<channel>.probe` (it answers `frame-files` with what it holds).
     */
    frameFiles: z
      .strictObject({
        dir: z
          .string()
          .max(1024)
          .regex(/^\/[^\0]*$/, 'expected an absolute path'),
        channel: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected letters, digits, _ or -'),
      })
      .optional(),
  })
  .refine((welcome) => (welcome.model === undefined) !== (welcome.task === undefined), {
    message: 'a welcome names either a built-in model or a task',
  });

export const weightsSchema = z.strictObject({
  type: z.literal('weights'),
  /** Increases with every optimizer step; compute/evaluate requests name the version to use. */
  version: index,
  weights: wireTensorSchema,
});

const shardData = {
  shard: index,
  weightsVersion: index,
  /** Since 1.4: the samples' features as the task stores them, shape [count, ...sample shape]. */
  features: wireTensorSchema,
  /** The samples' labels as the task stores them, shape [count, ...label shape]. */
  labels: wireTensorSchema,
};

/**
 * Since 1.7: the global batch's BatchNormalization statistics (float32, per layer its means then its
 * variances), how the summed loss changes with them (the same layout), and the batch's samples.
 */
const syncedStatistics = z.strictObject({
  statistics: wireTensorSchema,
  adjoints: wireTensorSchema,
  samples: count,
});

/**
 * Since 1.4: each sample's 32-bit key (as int32, shape [count]), which its dropout masks are drawn from,
 * so a sample is dropped the same way whichever worker computes it.
 */
const keys = wireTensorSchema;

export const computeSchema = z.strictObject({
  type: z.literal('compute'),
  step: index,
  ...shardData,
  keys,
  /** Since 1.7: normalise every BatchNormalization layer with these statistics (synchronised step). */
  batchNorm: syncedStatistics.optional(),
});

/**
 * Since 1.7: pass `pass` of step `step`'s synchronised BatchNormalization over one shard: the moments
 * of layer `layer`'s input (`statistics` holds the layers before it), or the adjoint of its statistics
 * (`adjoints` holds the layers after it).
 */
export const batchNormSchema = z.strictObject({
  type: z.literal('batch-norm'),
  step: index,
  pass: index,
  kind: z.enum(['moments', 'adjoint']),
  layer: index,
  ...shardData,
  keys,
  ...syncedStatistics.shape,
});

export const evaluateSchema = z.strictObject({ type: z.literal('evaluate'), round: index, ...shardData });

/**
 * Since 1.5, ring: the run's state for this worker's replica, at step `version`: a checkpoint's bytes
 * (train/checkpoint.ts), and the training set's size, which fixes the run's length and schedule.
 */
export const replicaSchema = z.strictObject({
  type: z.literal('replica'),
  version: index,
  datasetSize: count,
  state: bytes,
});

/**
 * Since 1.5, ring: reduce step `step` among `peers` (in rank order; this worker is `rank`). `shards`
 * is the step's plan in shard order, each with the rank holding its gradient. `attempt` tells a redone
 * reduction from an abandoned one.
 */
export const reduceSchema = z
  .strictObject({
    type: z.literal('reduce'),
    step: index,
    attempt: index,
    rank: index,
    samples: count,
    shards: z
      .array(z.strictObject({ start: index, end: index, holder: index }))
      .min(1)
      .max(1 << 16),
    peers: z
      .array(z.strictObject({ workerId: name, address: peerAddress }))
      .min(1)
      .max(4096),
    /** Report the replica's digest with `reduced`, for the coordinator to compare the replicas. */
    digest: z.boolean().optional(),
  })
  .refine((reduce) => reduce.rank < reduce.peers.length, { message: 'rank outside the peers' })
  .refine((reduce) => reduce.shards.every((shard) => shard.holder < reduce.peers.length), {
    message: 'a shard held by a rank outside the peers',
  });

/** Since 1.5, ring: every peer holds the step's mean gradient; apply it. */
export const applySchema = z.strictObject({ type: z.literal('apply'), step: index, attempt: index });

/** Since 1.5, ring: send the replica's state at step `version` (for a checkpoint or a joining worker). */
export const stateRequestSchema = z.strictObject({ type: z.literal('state-request'), version: index });

export const shutdownSchema = z.strictObject({
  type: z.literal('shutdown'),
  code: errorCode,
  reason: text,
});

export const coordinatorMessageSchema = z.discriminatedUnion('type', [
  welcomeSchema,
  weightsSchema,
  computeSchema,
  evaluateSchema,
  shutdownSchema,
  replicaSchema,
  reduceSchema,
  applySchema,
  stateRequestSchema,
  batchNormSchema,
]);

// ---- worker ↔ worker (ring) -----------------------------------------------------------------------

/**
 * Since 1.5: the sender's shards' gradients restricted to the receiver's chunk of the parameters,
 * one row per shard it holds (`shards`, in shard order), float32 [shards, chunk length].
 */
export const scatterSchema = z.strictObject({
  type: z.literal('scatter'),
  step: index,
  attempt: index,
  from: index,
  shards: z.array(index).max(1 << 16),
  parts: wireTensorSchema,
});

/** Since 1.5: the sender's chunk of the step's mean gradient, float32 [chunk length]. */
export const gatherSchema = z.strictObject({
  type: z.literal('gather'),
  step: index,
  attempt: index,
  from: index,
  chunk: wireTensorSchema,
});

export const peerMessageSchema = z.discriminatedUnion('type', [scatterSchema, gatherSchema]);

export type WorkerPhase = z.infer<typeof workerPhase>;
export type Hello = z.infer<typeof helloSchema>;
export type GradientMessage = z.infer<typeof gradientSchema>;
export type EvaluationMessage = z.infer<typeof evaluationSchema>;
export type Heartbeat = z.infer<typeof heartbeatSchema>;
export type Failure = z.infer<typeof failureSchema>;
export type WorkerMessage = z.infer<typeof workerMessageSchema>;
export type Welcome = z.infer<typeof welcomeSchema>;
export type WeightsMessage = z.infer<typeof weightsSchema>;
export type ComputeRequest = z.infer<typeof computeSchema>;
export type EvaluateRequest = z.infer<typeof evaluateSchema>;
export type Shutdown = z.infer<typeof shutdownSchema>;
export type CoordinatorMessage = z.infer<typeof coordinatorMessageSchema>;
export type ReduceRequest = z.infer<typeof reduceSchema>;
export type PeerMessage = z.infer<typeof peerMessageSchema>;
export type ComputeTimings = z.infer<typeof computeTimings>;
export type BatchNormRequest = z.infer<typeof batchNormSchema>;
export type BatchNormResult = z.infer<typeof batchNormResultSchema>;
