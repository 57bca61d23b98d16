/**
 * Every error Callosum raises on purpose carries a machine-readable `code` from this one table, so a
 * caller (or a peer on the wire) can branch on it without parsing messages. The meaning of each code is
 * documented here and nowhere else.
 */
export const ErrorCodes = {
  /** A value given by the user (option, flag, spec) is out of range or of the wrong kind. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** A name looked up in a registry (model, optimizer, backend, schedule) is not registered. */
  UNKNOWN_NAME: 'UNKNOWN_NAME',
  /** A second registration under a name that is already taken. */
  DUPLICATE_REGISTRATION: 'DUPLICATE_REGISTRATION',
  /** A data file is missing, unreadable, truncated or not in the format it claims. */
  DATASET_INVALID: 'DATASET_INVALID',
  /** A requested compute backend cannot be loaded or initialised on this machine. */
  BACKEND_UNAVAILABLE: 'BACKEND_UNAVAILABLE',
  /** A flat vector or state blob does not match the layout it is applied to. */
  SHAPE_MISMATCH: 'SHAPE_MISMATCH',
  /** A loss, gradient or weight contains NaN or Infinity. */
  NON_FINITE: 'NON_FINITE',
  /**
   * Every worker (or trainLocal's one process) found the same step's loss or gradient non-finite (NaN or
   * Infinity): the weights themselves have diverged, typically from a learning rate far too high. The run
   * stops at the last good step, which its checkpoint holds; the bad update is never applied.
   */
  TRAINING_DIVERGED: 'TRAINING_DIVERGED',
  /** A saved model, checkpoint or metrics log (metrics.jsonl) cannot be read back. */
  ARTIFACT_INVALID: 'ARTIFACT_INVALID',
  /**
   * A task module cannot be used: it does not load, has no defineTask default export, its model or data
   * factory, or a loss or metric function, throws, or its data does not fit its model and loss. The
   * message names what is wrong.
   */
  TASK_INVALID: 'TASK_INVALID',
  /**
   * A file could not be written (a checkpoint, the model, metrics.jsonl, the trace, a run file): the
   * disk is full, the directory became read-only, and so on. The message names the file and what the
   * system said about the directory holding it. The coordinator stops the run with it; the run continues
   * with `--resume` from its newest checkpoint once the file can be written again.
   */
  WRITE_FAILED: 'WRITE_FAILED',

  // Wire protocol (docs/protocol.md). Sent in `failure` and `shutdown` messages and as close reasons.
  /** A frame is not valid MessagePack, or decodes to something that is not a valid message. */
  MALFORMED_MESSAGE: 'MALFORMED_MESSAGE',
  /** The peer speaks a protocol major version this side does not. */
  VERSION_MISMATCH: 'VERSION_MISMATCH',
  /** A valid message arrived at a point of the conversation where it makes no sense (e.g. before hello). */
  UNEXPECTED_MESSAGE: 'UNEXPECTED_MESSAGE',
  /** A result for a step, shard or round that is not (or no longer) assigned to the sender. Discarded. */
  STALE_MESSAGE: 'STALE_MESSAGE',
  /** A worker could not compute what it was asked to (its backend failed). */
  COMPUTE_FAILED: 'COMPUTE_FAILED',
  /** The run is complete: workers exit successfully. */
  RUN_ENDED: 'RUN_ENDED',
  /**
   * The coordinator was stopped before the run completed (a signal, e.g. preemption) and has
   * checkpointed: workers keep trying to reconnect, for a resumed coordinator.
   */
  COORDINATOR_STOPPING: 'COORDINATOR_STOPPING',
  /** A peer stopped reading: more bytes are queued for it than the limit allows. */
  SLOW_READER: 'SLOW_READER',
  /** A connection did not complete the handshake (`hello`) in time. */
  HANDSHAKE_TIMEOUT: 'HANDSHAKE_TIMEOUT',
  /** The worker's task differs from the run's (or one side has none); the reason names the difference. */
  TASK_MISMATCH: 'TASK_MISMATCH',
  /** Ring topology: a worker lost its link to a peer in the middle of a reduction (the step is redone). */
  PEER_LOST: 'PEER_LOST',
  /** Ring topology: the worker's peer links (TLS or not) differ from the run's; the reason says which. */
  PEER_TLS_MISMATCH: 'PEER_TLS_MISMATCH',
  /** Ring topology: a replica's weights differ from the others' (it is named and replaced). */
  REPLICA_DIVERGED: 'REPLICA_DIVERGED',
  /** The run already has its maximum number of workers. */
  RUN_FULL: 'RUN_FULL',
  /**
   * The worker was evicted for its results (failed, unusable or always late) and is not taken back yet:
   * it may try again later (the reason says when).
   */
  EVICTION_COOLDOWN: 'EVICTION_COOLDOWN',
  /** Not enough workers to go on, for longer than allowed. */
  NO_WORKERS: 'NO_WORKERS',
  /** An unexpected error (a bug): the message says where. */
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class CallosumError extends Error {
  override readonly name = 'CallosumError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when `error` is a CallosumError, optionally with the given code. */
export function isCallosumError(error: unknown, code?: ErrorCode): error is CallosumError {
  return error instanceof CallosumError && (code === undefined || error.code === code);
}
