import { CallosumError, ErrorCodes } from '../errors.js';

/**
 * Tensor frames (protocol 1.1): one large tensor travels as raw bytes at offset 8 of the frame, with
 * the rest of the message in a small MessagePack trailer, so the receiver reads it in place as a
 * Float32Array and the sender can write it straight into the frame (a gradient read back from the
 * backend, say) before it knows the rest of the message. Layout:
 *
 *   0       4 bytes  magic C1 54 46 31; 0xC1 is never valid MessagePack, so no plain frame starts so
 *   4       uint32   little-endian length H of the trailer
 *   8       N bytes  the tensor's bytes, which become `message[field].bytes` (N = frame length − 8 − H)
 *   8 + N   H bytes  MessagePack array [field, message]: the message with `message[field].bytes` empty
 */
export const TENSOR_FRAME_MAGIC = Uint8Array.of(0xc1, 0x54, 0x46, 0x31);
const PAYLOAD_OFFSET = 8;
/** Tensors smaller than this stay inside plain MessagePack frames: not worth a second layout. */
export const TENSOR_FRAME_MIN_BYTES = 64 * 1024;
/**
 * Room in a frame for everything besides its large tensor (the message's other fields and the framing),
 * when a receiver bounds the frames it accepts by the tensor's size.
 */
export const FRAME_OVERHEAD_BYTES = 64 * 1024;
/** Room reserved after the payload for the trailer; a larger one costs a copy of the frame. */
const TRAILER_RESERVE_BYTES = 4 * 1024;

const EMPTY_BYTES = new Uint8Array(0);

type MessageObject = Record<string, unknown>;

/** A tensor frame being written: fill `payload`, then `finish` with the message it belongs to. */
export interface TensorFrameWriter {
  /** Where the tensor's bytes go: aligned to 8 bytes, `byteLength` long. */
  readonly payload: Uint8Array;
  /** The finished frame. `message[field]` is the tensor's dtype and shape; its bytes are not read. */
  finish(message: unknown, field: string): Uint8Array;
}

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

/**
 * Starts a tensor frame with room for a payload of `byteLength` bytes: in `reuse` if it is large enough
 * (the memory of an earlier frame nothing refers to any more), else in new memory.
 */
export function startTensorFrame(
  byteLength: number,
  packTrailer: (trailer: unknown) => Uint8Array,
  reuse?: ArrayBuffer,
): TensorFrameWriter {
  const size = PAYLOAD_OFFSET + byteLength + TRAILER_RESERVE_BYTES;
  // Not zero-filled: the payload is the caller's to write and only the written trailer is sent.
  // A Buffer, because ws sends a Buffer (or a view of one) without copying it.
  const buffer =
    reuse !== undefined && reuse.byteLength >= size ? Buffer.from(reuse, 0, size) : Buffer.allocUnsafe(size);
  const payload = buffer.subarray(PAYLOAD_OFFSET, PAYLOAD_OFFSET + byteLength);
  return {
    payload,
    finish(message, field) {
      const tensor = (message as MessageObject)[field];
      if (typeof tensor !== 'object' || tensor === null) {
        throw new CallosumError(
          ErrorCodes.INVALID_ARGUMENT,
          `tensor frame: message field "${field}" is not a tensor`,
        );
      }
      const trailer = packTrailer([
        field,
        { ...(message as MessageObject), [field]: { ...tensor, bytes: EMPTY_BYTES } },
      ]);
      const end = PAYLOAD_OFFSET + byteLength;
      const frame =
        trailer.byteLength <= TRAILER_RESERVE_BYTES
          ? buffer.subarray(0, end + trailer.byteLength)
          : Buffer.concat([buffer.subarray(0, end), trailer]);
      frame.set(TENSOR_FRAME_MAGIC, 0);
      frame.writeUInt32LE(trailer.byteLength, 4);
      frame.set(trailer, end);
      return frame;
    },
  };
}

/** A tensor frame carrying `message[field].bytes` as its payload (in `reuse`, as startTensorFrame). */
export function encodeTensorFrame(
  message: MessageObject,
  field: string,
  packTrailer: (trailer: unknown) => Uint8Array,
  reuse?: ArrayBuffer,
): Uint8Array {
  const bytes = (message[field] as { bytes: Uint8Array }).bytes;
  const writer = startTensorFrame(bytes.byteLength, packTrailer, reuse);
  writer.payload.set(bytes);
  return writer.finish(message, field);
}

/**
 * Splits a tensor frame and puts the payload (a view of the frame, not a copy) back into the message.
 * `unpackTrailer` must return plain data only; the message is validated by the caller as usual.
 */
export function decodeTensorFrame(frame: Uint8Array, unpackTrailer: (bytes: Uint8Array) => unknown): unknown {
  if (frame.byteLength < PAYLOAD_OFFSET || !TENSOR_FRAME_MAGIC.every((byte, i) => frame[i] === byte)) {
    throw malformed('has no valid prelude');
  }
  const trailerLength = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(4, true);
  const payloadEnd = frame.byteLength - trailerLength;
  if (payloadEnd < PAYLOAD_OFFSET) {
    throw malformed(`trailer of ${trailerLength} bytes does not fit in a frame of ${frame.byteLength}`);
  }
  const trailer = unpackTrailer(frame.subarray(payloadEnd));
  if (!Array.isArray(trailer) || trailer.length !== 2 || typeof trailer[0] !== 'string') {
    throw malformed('trailer is not [field, message]');
  }
  const [field, message] = trailer as [string, unknown];
  const tensor = isObject(message) && Object.hasOwn(message, field) ? message[field] : undefined;
  if (!isObject(tensor) || !(tensor.bytes instanceof Uint8Array) || tensor.bytes.byteLength !== 0) {
    throw malformed(`trailer field "${field}" is not a tensor with empty bytes`);
  }
  tensor.bytes = frame.subarray(PAYLOAD_OFFSET, payloadEnd);
  return message;
}

function isObject(value: unknown): value is MessageObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function malformed(what: string): CallosumError {
  return new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `tensor frame ${what}`);
}
