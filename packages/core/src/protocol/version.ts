/**
 * Version of the wire protocol (docs/protocol.md). Peers must agree on `major`. A higher `minor` may
 * add optional fields; since every message is validated strictly, a peer sends a field only to a side
 * that announced a minor version which knows it.
 */
export const PROTOCOL_VERSION = { major: 1, minor: 1 } as const;

/** Whether a peer announcing `version` reads tensor frames (added in 1.1). */
export function readsTensorFrames(version: { readonly major: number; readonly minor: number }): boolean {
  return version.major === 1 && version.minor >= 1;
}
