import { CallosumError, ErrorCodes } from '../errors.js';

/**
 * Tensor frames (protocol 1.1): one large tensor travels after a small MessagePack header instead of
 * inside it, starting at an offset that is a multiple of 8, so the receiver can read it in place as a
 * Float32Array instead of copying it (and the sender copies it once, not twice). Layout:
 *
 *   0       4 bytes  magic C1 54 46 31; 0xC1 is never valid MessagePack, so no plain frame starts so
 *   4       uint32   little-endian length H of the header
 *   8       H bytes  MessagePack array [field, message]: the message with `message[field].bytes` empty
 *   8 + H   zeros    padding up to the next multiple of 8
 *   P       the rest the tensor's bytes, which become `message[field].bytes`
 */
export const TENSOR_FRAME_MAGIC = Uint8Array.of(0xc1, 0x54, 0x46, 0x31);
const PRELUDE_BYTES = 8;
const PAYLOAD_ALIGNMENT = 8;
/** Tensors smaller than this stay inside plain MessagePack frames: not worth a second layout. */
export const TENSOR_FRAME_MIN_BYTES = 64 * 1024;

const EMPTY_BYTES = new Uint8Array(0);

type MessageObject = Record<string, unknown>;

export function isTensorFrame(frame: Uint8Array): boolean {
  return frame[0] === TENSOR_FRAME_MAGIC[0];
}

/** The top-level field holding the largest tensor of at least TENSOR_FRAME_MIN_BYTES, if any. */
export function largeTensorField(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  let best: string | undefined;
  let bestBytes = TENSOR_FRAME_MIN_BYTES - 1;
  for (const [field, value] of Object.entries(message)) {
    const bytes = (value as { bytes?: unknown } | null)?.bytes;
    if (bytes instanceof Uint8Array && bytes.byteLength > bestBytes) {
      best = field;
      bestBytes = bytes.byteLength;
    }
  }
  return best;
}

/** Builds a tensor frame carrying `message[field].bytes` as its payload. */
export function encodeTensorFrame(
  message: MessageObject,
  field: string,
  packHeader: (header: unknown) => Uint8Array,
): Uint8Array {
  const tensor = message[field] as { bytes: Uint8Array };
  const header = packHeader([field, { ...message, [field]: { ...tensor, bytes: EMPTY_BYTES } }]);
  const payloadStart = alignUp(PRELUDE_BYTES + header.byteLength);
  // Every byte is written below, so no zero-filling of megabytes (ws sends a Buffer without copying).
  const frame = Buffer.allocUnsafe(payloadStart + tensor.bytes.byteLength);
  frame.set(TENSOR_FRAME_MAGIC, 0);
  frame.writeUInt32LE(header.byteLength, 4);
  frame.set(header, PRELUDE_BYTES);
  frame.fill(0, PRELUDE_BYTES + header.byteLength, payloadStart);
  frame.set(tensor.bytes, payloadStart);
  return frame;
}

/**
 * Splits a tensor frame and puts the payload (a view of the frame, not a copy) back into the message.
 * `unpackHeader` must return plain data only; the message is validated by the caller as usual.
 */
export function decodeTensorFrame(frame: Uint8Array, unpackHeader: (bytes: Uint8Array) => unknown): unknown {
  if (frame.byteLength < PRELUDE_BYTES || !TENSOR_FRAME_MAGIC.every((byte, i) => frame[i] === byte)) {
    throw malformed('has no valid prelude');
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const headerLength = view.getUint32(4, true);
  const headerEnd = PRELUDE_BYTES + headerLength;
  const payloadStart = alignUp(headerEnd);
  if (payloadStart > frame.byteLength) {
    throw malformed(`header of ${headerLength} bytes does not fit in a frame of ${frame.byteLength}`);
  }
  for (let i = headerEnd; i < payloadStart; i++) {
    if (frame[i] !== 0) throw malformed('padding after the header is not zero');
  }
  const header = unpackHeader(frame.subarray(PRELUDE_BYTES, headerEnd));
  if (!Array.isArray(header) || header.length !== 2 || typeof header[0] !== 'string') {
    throw malformed('header is not [field, message]');
  }
  const [field, message] = header as [string, unknown];
  const tensor = isObject(message) && Object.hasOwn(message, field) ? message[field] : undefined;
  if (!isObject(tensor) || !(tensor.bytes instanceof Uint8Array) || tensor.bytes.byteLength !== 0) {
    throw malformed(`header field "${field}" is not a tensor with empty bytes`);
  }
  tensor.bytes = frame.subarray(payloadStart);
  return message;
}

function alignUp(offset: number): number {
  return Math.ceil(offset / PAYLOAD_ALIGNMENT) * PAYLOAD_ALIGNMENT;
}

function isObject(value: unknown): value is MessageObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function malformed(what: string): CallosumError {
  return new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `tensor frame ${what}`);
}
