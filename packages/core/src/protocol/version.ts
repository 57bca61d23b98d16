/**
 * Version of the wire protocol (docs/protocol.md). Peers must agree on `major`. A higher `minor` may
 * add optional fields; since every message is validated strictly, a peer sends a field only to a side
 * that announced a minor version which knows it.
 */
export const PROTOCOL_VERSION = { major: 1, minor: 0 } as const;
