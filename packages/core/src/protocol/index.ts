export {
  AUTH_CLOCK_WINDOW_MS,
  AUTH_HEADER,
  type AuthResult,
  AuthVerifier,
  type AuthVerifierOptions,
  createAuthHeader,
  MIN_TOKEN_LENGTH,
} from './auth.js';
export { type Codec, createMsgpackCodec, type EncodeOptions } from './codec.js';
export {
  FrameFileLink,
  type FrameFileOffer,
  isFrameFileReference,
  readProbe,
  writeFrameFile,
  writeProbe,
} from './frame-files.js';
export { isLoopbackHost } from './loopback.js';
export * from './messages.js';
export { parseCoordinatorMessage, parsePeerMessage, parseWorkerMessage } from './parse.js';
export { pemProblem } from './pem.js';
export { escapeUnprintable, unprintableCharacter, unprintableNameProblem } from './printable.js';
export { ConnectionRateLimit } from './rate-limit.js';
export { gradientReply } from './replies.js';
export { keysToWire, samplesFromWire, samplesToWire } from './samples.js';
export {
  elementCount,
  fromWireTensor,
  TENSOR_DTYPES,
  type TensorDtype,
  toWireTensor,
  type WireTensor,
} from './tensor.js';
export { FRAME_OVERHEAD_BYTES, type TensorFrameWriter } from './tensor-frame.js';
export {
  createUpgradeServer,
  PLAIN_HTTP_TO_TLS_REASON,
  refuseUpgrade,
  type ServerTls,
  type UpgradeServerOptions,
} from './upgrade-server.js';
export {
  FAILURE_ATTEMPT_PROTOCOL,
  FRAME_FILES_PROTOCOL,
  formatProtocol,
  INSTANCE_HEADER,
  isWorkerInstance,
  MINIMUM_PROTOCOL,
  NON_FINITE_METRICS_PROTOCOL,
  PEER_TLS_PROTOCOL,
  PROTOCOL_VERSION,
  type ProtocolVersion,
  protocolAtLeast,
  readsTensorFrames,
  SYNC_BATCH_NORM_PROTOCOL,
} from './version.js';
export {
  DEFAULT_WIRE_DTYPE,
  floatsFromWire,
  floatsToWire,
  protocolForWireDtype,
  roundForWire,
  WIRE_DTYPES,
  type WireDtype,
  wireOverflowHint,
} from './wire-dtype.js';
