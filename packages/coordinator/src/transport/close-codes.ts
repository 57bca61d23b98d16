/**
 * The WebSocket close codes the coordinator sends (RFC 6455 §7.4; 4000–4999 are ours). The close
 * reason beside them carries the ErrorCode, so a worker can tell why.
 */
export const CloseCodes = {
  /** The run ended, or the coordinator is stopping: an orderly close. */
  NORMAL: 1000,
  /** The peer's protocol major version (or features) cannot serve this run. */
  PROTOCOL_ERROR: 1002,
  /** The peer broke the protocol: a malformed or unexpected frame, no hello in time, not reading. */
  POLICY_VIOLATION: 1008,
  /** The run already has its maximum number of workers. */
  TRY_AGAIN_LATER: 1013,
  /** Evicted: silent past the heartbeat timeout, or past the hard shard deadline. */
  EVICTED_UNRESPONSIVE: 4008,
} as const;

export type CloseCode = (typeof CloseCodes)[keyof typeof CloseCodes];
