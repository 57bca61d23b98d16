import { z } from 'zod';
import { ErrorCodes } from '../errors.js';
import { elementCount, TENSOR_DTYPES } from './tensor.js';
import { WIRE_DTYPES } from './wire-dtype.js';

/**
 * Every message of the wire protocol, defined once: both sides import these schemas and the types
 * inferred from them. Strict objects: an unknown field is an error, so a typo or an injection
 * attempt never passes silently. docs/protocol.md describes the same messages for other languages.
 */

const MAX_RANK = 8;
const MAX_NAME_LENGTH = 256;
const MAX_TEXT_LENGTH = 4096;

const count = z.int().min(0);
const index = z.int().min(0);
const name = z.string().min(1).max(MAX_NAME_LENGTH);
const text = z.string().max(MAX_TEXT_LENGTH);
const milliseconds = z.number().min(0);

export const wireTensorSchema = z
  .strictObject({
    dtype: z.enum(Object.keys(TENSOR_DTYPES) as [keyof typeof TENSOR_DTYPES]),
    shape: z.array(count).max(MAX_RANK),
    bytes: z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected bytes'),
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

/** Per-sample sums of the task's metrics other than accuracy, in the task's order. */
const metricSums = z.array(z.number()).max(256);

const errorCode = z.enum(Object.values(ErrorCodes) as [string, ...string[]]);

/** What a worker was doing when it last reported; lets the coordinator name a late worker's phase. */
export const workerPhase = z.enum(['idle', 'receiving', 'computing', 'sending']);

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
  workerName: name,
  /** The backend the worker computes with (e.g. "wasm", "tensorflow"). */
  backend: name,
  pid: z.int().min(0),
  hostname: name,
  /** Since 1.4: the fingerprint of the task this worker loaded (`--task`); absent for the built-in models. */
  task: fingerprint.optional(),
});

export const gradientSchema = z.strictObject({
  type: z.literal('gradient'),
  step: index,
  shard: index,
  /** Gradient of the summed loss over the shard, one element per parameter, in the run's wire dtype. */
  gradient: wireTensorSchema,
  lossSum: z.number(),
  /** Samples counted correct; fractional for binary accuracy over several outputs. */
  correct: z.number().min(0),
  metricSums,
  count,
  timings: computeTimings,
});

export const evaluationSchema = z.strictObject({
  type: z.literal('evaluation'),
  round: index,
  shard: index,
  lossSum: z.number(),
  /** Samples counted correct; fractional for binary accuracy over several outputs. */
  correct: z.number().min(0),
  metricSums,
  count,
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
  /** The request that failed: `step` for a compute request, `round` for an evaluation, and its shard. */
  step: index.optional(),
  round: index.optional(),
  shard: index.optional(),
});

export const workerMessageSchema = z.discriminatedUnion('type', [
  helloSchema,
  gradientSchema,
  evaluationSchema,
  heartbeatSchema,
  failureSchema,
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
     * Since 1.6, sent only when it is not float32 (and only to 1.6+ workers): the dtype of every
     * `weights` tensor and `gradient` of the run. Absent: float32.
     */
    wireDtype: z.enum(WIRE_DTYPES).optional(),
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

export const computeSchema = z.strictObject({
  type: z.literal('compute'),
  step: index,
  ...shardData,
  /**
   * Since 1.4: each sample's 32-bit key (as int32, shape [count]), which its dropout masks are drawn
   * from, so a sample is dropped the same way whichever worker computes it.
   */
  keys: wireTensorSchema,
});

export const evaluateSchema = z.strictObject({ type: z.literal('evaluate'), round: index, ...shardData });

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
]);

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
export type ComputeTimings = z.infer<typeof computeTimings>;
