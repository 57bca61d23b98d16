/**
 * Version of the wire protocol (docs/protocol.md). Peers must agree on `major`. A higher `minor` may
 * add optional fields or a framing (1.1: tensor frames; 1.2: micro-batches in compute requests; 1.3:
 * the micro-batch size moves into the welcome; 1.4: task runs, typed shard features and metric sums;
 * 1.5: the ring topology; 1.6: 16-bit wire dtypes for weights and gradients; 1.7: synchronised
 * BatchNormalization; 1.8: TLS between ring peers; 1.9: frame files between processes on one machine;
 * 1.10: the worker's instance header, and `shutdown` `EVICTION_COOLDOWN`; 1.11: `failure.attempt`; 1.12:
 * NaN and ±Infinity in `metricSums`);
 * since every message is validated strictly, a peer uses them only with a side that announced a minor
 * version which knows them.
 */
export const PROTOCOL_VERSION = { major: 1, minor: 12 } as const;

/** The first protocol with synchronised BatchNormalization's passes (`batch-norm`). */
export const SYNC_BATCH_NORM_PROTOCOL: ProtocolVersion = { major: 1, minor: 7 };

/** The first protocol in which a worker says whether it reduces over TLS with its ring peers (`hello.peerTls`). */
export const PEER_TLS_PROTOCOL: ProtocolVersion = { major: 1, minor: 8 };

/** The first protocol with frame files (`welcome.frameFiles`, `frame-files`; frame-files.ts). */
export const FRAME_FILES_PROTOCOL: ProtocolVersion = { major: 1, minor: 9 };

/** The first protocol whose ring failures name their reduction's attempt (`failure.attempt`). */
export const FAILURE_ATTEMPT_PROTOCOL: ProtocolVersion = { major: 1, minor: 11 };

/**
 * The first protocol whose `metricSums` may hold NaN and ±Infinity (a task's metric reported as it came
 * out). An older coordinator refuses such a frame: a worker sends it only to a 1.12+ coordinator, and
 * to an older one fails the shard with NON_FINITE, as before.
 */
export const NON_FINITE_METRICS_PROTOCOL: ProtocolVersion = { major: 1, minor: 12 };

/**
 * Since 1.10 a worker sends this header in its upgrade request: a random id of the worker process, the
 * same on every connection it makes (names need not be unique: `host:1` in every container). A
 * coordinator refuses a worker it evicted for its results, for a while, by this id, with `shutdown`
 * `EVICTION_COOLDOWN`; a worker without it is never refused so. An HTTP header, not a `hello` field,
 * so that a coordinator older than 1.10, which refuses fields it does not know, ignores it.
 */
export const INSTANCE_HEADER = 'x-callosum-instance';

/** A worker's INSTANCE_HEADER: 32 lowercase hex digits. */
export function isWorkerInstance(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{32}$/.test(value);
}

/**
 * The oldest protocol any run accepts: 1.4 changed the shard requests (typed `features` for `images`)
 * and the replies (`metricSums`), so no older worker can compute a shard. A run whose weights and
 * gradients travel as 16-bit floats needs 1.6 (wire-dtype.ts).
 */
export const MINIMUM_PROTOCOL: ProtocolVersion = { major: 1, minor: 4 };

export interface ProtocolVersion {
  readonly major: number;
  readonly minor: number;
}

/** Whether a peer announcing `version` reads tensor frames (added in 1.1). */
export function readsTensorFrames(version: ProtocolVersion): boolean {
  return protocolAtLeast(version, { major: 1, minor: 1 });
}

/** Whether `version` is `required` or a later minor of the same major. */
export function protocolAtLeast(version: ProtocolVersion, required: ProtocolVersion): boolean {
  return (
    version.major > required.major || (version.major === required.major && version.minor >= required.minor)
  );
}

export function formatProtocol(version: ProtocolVersion): string {
  return `${version.major}.${version.minor}`;
}
