/**
 * Version of the wire protocol (docs/protocol.md). Peers must agree on `major`; a higher `minor` only
 * adds optional fields, which the other side ignores.
 */
export const PROTOCOL_VERSION = { major: 1, minor: 0 } as const;
