/**
 * Version of the wire protocol (docs/protocol.md). Peers must agree on `major`. A higher `minor` may
 * add optional fields or a framing (1.1: tensor frames; 1.2: micro-batches in compute requests);
 * since every message is validated strictly, a peer uses them only with a side that announced a minor
 * version which knows them.
 */
export const PROTOCOL_VERSION = { major: 1, minor: 2 } as const;

/** Whether a peer announcing `version` reads tensor frames (added in 1.1). */
export function readsTensorFrames(version: ProtocolVersion): boolean {
  return atLeast(version, 1, 1);
}

/** Whether a peer announcing `version` computes micro-batched shards (added in 1.2). */
export function readsMicroBatches(version: ProtocolVersion): boolean {
  return atLeast(version, 1, 2);
}

interface ProtocolVersion {
  readonly major: number;
  readonly minor: number;
}

function atLeast(version: ProtocolVersion, major: number, minor: number): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}
