/**
 * Version of the wire protocol (docs/protocol.md). Peers must agree on `major`. A higher `minor` may
 * add optional fields or a framing (1.1: tensor frames); since every message is validated strictly, a
 * peer uses them only with a side that announced a minor version which knows them.
 */
export const PROTOCOL_VERSION = { major: 1, minor: 1 } as const;

/** Whether a peer announcing `version` reads tensor frames (added in 1.1). */
export function readsTensorFrames(version: { readonly major: number; readonly minor: number }): boolean {
  return version.major > 1 || (version.major === 1 && version.minor >= 1);
}
