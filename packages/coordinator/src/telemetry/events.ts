import { ErrorCodes } from '@callosum/core';
import { z } from 'zod';
import { runCountersSchema } from './counters.js';
import { stepBytesSchema } from './step-bytes.js';

/**
 * Every event a coordinator records, one zod schema per kind, as one union discriminated on `type`.
 * The schemas describe what a metrics.jsonl line holds (`time` is added when it is written); the
 * TypeScript type of what `Telemetry.record` accepts is inferred from them, so the two cannot drift.
 */
const count = z.number().int().nonnegative();
const workerId = z.string();
const errorCode = z.enum(Object.values(ErrorCodes) as [string, ...string[]]);
/** JSON has no NaN: a mean over nothing (no evaluation yet, no step timed) is written as null. */
const measured = z.number().nullable();

/**
 * Fields added since metrics.jsonl was first written are optional: a run resumed across versions
 * appends to a file whose earlier lines lack them. The coordinator always records them.
 */
const addedLater = <T extends z.ZodType>(field: T) => field.optional();

/**
 * Metrics of the task by name. A metric that came out NaN or ±Infinity is recorded as it is and written
 * as null (a run reports such a metric and goes on; only the loss and gradient mean divergence).
 */
const metricsByName = z.record(z.string(), measured);

/** Who an event is about: the worker's id, and its name (empty before its hello) and address. */
const aboutWorker = { worker: workerId, name: addedLater(z.string()), address: addedLater(z.string()) };

const eventSchemas = [
  z.strictObject({
    type: z.literal('resumed'),
    step: count,
    totalSteps: addedLater(count),
    checkpoint: z.string(),
  }),
  z.strictObject({
    type: z.enum(['auth-failure', 'connection-refused']),
    peer: z.string(),
    status: z.number().int(),
    reason: z.string(),
  }),
  z.strictObject({
    type: z.literal('worker-joined'),
    worker: workerId,
    name: z.string(),
    address: addedLater(z.string()),
    backend: z.string(),
    /** Healthy workers once it joined. */
    healthy: addedLater(count),
    /** Ring runs: workers still waiting for the run's state (this one among them), so not yet healthy. */
    syncing: addedLater(count),
  }),
  z.strictObject({ type: z.literal('worker-left'), ...aboutWorker, reason: z.string() }),
  z.strictObject({ type: z.literal('worker-recovered'), ...aboutWorker }),
  z.strictObject({
    type: z.literal('worker-failure'),
    ...aboutWorker,
    code: z.string(),
    message: addedLater(z.string()),
  }),
  z.strictObject({
    type: z.literal('rejected-message'),
    ...aboutWorker,
    code: errorCode,
    message: addedLater(z.string()),
  }),
  z.strictObject({
    type: z.literal('rejected-gradient'),
    worker: workerId,
    step: count,
    shard: count,
    /** The step's synchronised BatchNormalization pass whose result it was; none for a gradient. */
    pass: addedLater(count),
    code: errorCode,
  }),
  z.strictObject({ type: z.literal('rejected-evaluation'), worker: workerId, round: count, shard: count }),
  z.strictObject({ type: z.literal('discarded-message'), worker: workerId, step: count, shard: count }),
  z.strictObject({
    type: z.literal('straggler'),
    worker: workerId,
    name: z.string(),
    address: z.string(),
    shard: count,
    phase: z.string(),
    pendingMs: z.number().nonnegative(),
    /** What the shards already answered in its round predict for this one. */
    typicalMs: addedLater(z.number().nonnegative()),
    lastHeardMs: addedLater(z.number().nonnegative()),
  }),
  z.strictObject({
    type: z.literal('late-peer'),
    ...aboutWorker,
    step: count,
    /**
     * `reducing`: it was sent the reduction and has not said it holds the mean (it may be exchanging
     * with its peers, or waiting for them); what its heartbeats last said is `heartbeatPhase`.
     */
    phase: z.string(),
    heartbeatPhase: z.string(),
    pendingMs: z.number().nonnegative(),
    lastHeardMs: z.number().nonnegative(),
  }),
  z.strictObject({
    type: z.literal('replica-diverged'),
    ...aboutWorker,
    step: count,
    /** Its replica's digest, and the one most replicas agree on. */
    digest: z.string(),
    expected: z.string(),
  }),
  z.strictObject({
    type: z.literal('reduction-redone'),
    step: count,
    attempt: count,
    reason: z.string(),
  }),
  z.strictObject({
    type: z.literal('eviction'),
    ...aboutWorker,
    reason: z.string(),
    // What the eviction was for: a missed deadline (shard, phase), silence (phase), not reading
    // (bufferedBytes), unusable results (code).
    shard: count.optional(),
    phase: z.string().optional(),
    bufferedBytes: count.optional(),
    code: errorCode.optional(),
  }),
  z.strictObject({
    type: z.literal('step'),
    step: count,
    totalSteps: count,
    epoch: count,
    /** The batch's place in its epoch (0-based). */
    batch: addedLater(count),
    loss: z.number(),
    accuracy: measured,
    metrics: addedLater(metricsByName),
    learningRate: z.number(),
    samplesPerSecond: measured,
    endsEpoch: addedLater(z.boolean()),
    workers: count,
    perWorker: z
      .array(
        z.strictObject({
          id: workerId,
          samples: count,
          computeMs: z.number(),
          transferMs: z.number(),
          waitMs: z.number(),
        }),
      )
      .readonly(),
    updateMs: z.number(),
    stepMs: z.number(),
    timeline: addedLater(
      z.strictObject({
        prepareMs: z.number(),
        broadcastMs: z.number(),
        reduceMs: z.number(),
        optimizerMs: z.number(),
        workers: z
          .array(z.strictObject({ id: workerId, sentMs: z.number(), receivedMs: z.number() }))
          .readonly(),
      }),
    ),
    bytes: addedLater(stepBytesSchema),
    ...runCountersSchema.shape,
  }),
  z.strictObject({
    type: z.literal('evaluation'),
    epoch: count,
    step: count,
    testLoss: measured,
    testAccuracy: measured,
    testMetrics: addedLater(metricsByName),
    count,
    evaluationMs: addedLater(z.number()),
  }),
  z.strictObject({ type: z.literal('checkpoint'), step: count, path: z.string() }),
  z.strictObject({ type: z.literal('stopped'), code: errorCode, reason: z.string(), step: count }),
  z.strictObject({
    type: z.literal('summary'),
    testAccuracy: measured,
    testLoss: measured,
    testMetrics: addedLater(metricsByName),
    epochs: z.number(),
    steps: count,
    workers: count,
    samplesPerSecond: measured,
    backend: z.string(),
    modelDir: z.string(),
    metricsFile: z.string(),
    authFailures: count,
    refusedConnections: count,
    seconds: z.number(),
    bytesPerStep: addedLater(z.strictObject({ coordinator: measured, busiestWorker: measured })),
    ...runCountersSchema.shape,
  }),
] as const;

/** One event of a run, as recorded. */
export const coordinatorEventSchema = z.discriminatedUnion('type', [...eventSchemas]);
export type CoordinatorEvent = z.infer<typeof coordinatorEventSchema>;
export type CoordinatorEventType = CoordinatorEvent['type'];

const recordedAt = z.iso.datetime();

/** An event with the time it was recorded: one line of metrics.jsonl, one message of the dashboard's feed. */
export type RecordedEvent = CoordinatorEvent & { time: string };

export function recordedEvent(event: CoordinatorEvent, time: Date): RecordedEvent {
  return { time: time.toISOString(), ...event };
}

/**
 * One line of metrics.jsonl: an event and when it was recorded. Throws (a ZodError naming the field)
 * for a line of an unknown type, a missing or extra field, or a field of the wrong kind.
 */
export function parseMetricsLine(line: string): RecordedEvent {
  const { time, ...event } = JSON.parse(line) as { time: unknown };
  return { ...coordinatorEventSchema.parse(event), time: recordedAt.parse(time) };
}
