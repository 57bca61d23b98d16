import { endianness } from 'node:os';
import { Packr } from 'msgpackr';
import { CallosumError, ErrorCodes } from '../errors.js';
import { isFrameFileReference } from './frame-files.js';
import {
  decodeTensorFrame,
  encodeTensorFrame,
  isTensorFrame,
  largeTensorField,
  startTensorFrame,
  type TensorFrameWriter,
} from './tensor-frame.js';

export interface EncodeOptions {
  /**
   * Send the message's largest tensor in a tensor frame (protocol 1.1, see tensor-frame.ts). Only for
   * a peer that announced minor version 1 or later; a 1.0 peer reads plain MessagePack only.
   */
  readonly tensorFrame?: boolean;
  /** For a tensor frame: memory of an earlier frame that nothing refers to any more, to write it in if it fits. */
  readonly reuse?: ArrayBuffer;
}

/** Turns messages into frames and back. Swappable, so tests can run the protocol in memory. */
export interface Codec {
  encode(message: unknown, options?: EncodeOptions): Uint8Array;
  /**
   * A tensor frame (1.1 peers only) whose payload of `byteLength` bytes the caller writes in place,
   * e.g. a gradient read back from the backend, before finishing it with the rest of the message.
   * `reuse`: memory of an earlier frame that nothing refers to any more, to write it in if it fits.
   */
  startTensorFrame(byteLength: number, reuse?: ArrayBuffer): TensorFrameWriter;
  /**
   * Reads a plain MessagePack frame or a tensor frame. Returns plain data only (objects, arrays,
   * strings, finite numbers, booleans, null, byte arrays); the numbers of a `metricSums` array may also
   * be NaN or ±Infinity (a task's metric may be; the message schemas admit that field alone).
   */
  decode(frame: Uint8Array): unknown;
}

const MAX_DEPTH = 16;

if (endianness() !== 'LE') {
  // Tensors travel as the host's raw bytes; the protocol says little-endian.
  throw new Error('Callosum requires a little-endian host');
}

/**
 * Plain MessagePack: no records, no structured clone. msgpackr still decodes some extension types
 * (Date, Set, RegExp, BigInt, Error, typed arrays) whatever the options, so every decoded value is
 * checked to be plain data before anything else sees it.
 */
export function createMsgpackCodec(): Codec {
  // skipValues (missing from msgpackr's typings): an absent optional field must not travel as
  // msgpackr's `undefined` extension, which our own decoder rejects.
  const packr = new Packr({
    ...{ skipValues: [undefined] },
    useRecords: false,
    structuredClone: false,
    moreTypes: false,
    mapsAsObjects: true,
  });
  const pack = (value: unknown): Uint8Array => packr.pack(value);
  /** `messageDepth`: where the message sits (0; 1 in a tensor frame's trailer, `[field, message]`). */
  const unpack = (bytes: Uint8Array, messageDepth = 0): unknown => {
    let value: unknown;
    try {
      value = packr.unpack(bytes);
    } catch (error) {
      throw new CallosumError(
        ErrorCodes.MALFORMED_MESSAGE,
        // msgpackr may append the decoded data to its message; keep the log line short
        `frame is not valid MessagePack: ${(error as Error).message.slice(0, 120)}`,
      );
    }
    assertPlainData(value, '$', 0, messageDepth);
    return value;
  };
  return {
    encode(message, options) {
      const field = options?.tensorFrame === true ? largeTensorField(message) : undefined;
      return field === undefined
        ? pack(message)
        : encodeTensorFrame(message as Record<string, unknown>, field, pack, options?.reuse);
    },
    startTensorFrame: (byteLength, reuse) => startTensorFrame(byteLength, pack, reuse),
    decode(frame) {
      if (isFrameFileReference(frame)) {
        // Resolved before decoding (FrameFileLink.incoming) on a connection that agreed to frame files.
        throw new CallosumError(
          ErrorCodes.MALFORMED_MESSAGE,
          'frame file reference on a connection that did not agree to frame files',
        );
      }
      return isTensorFrame(frame) ? decodeTensorFrame(frame, (trailer) => unpack(trailer, 1)) : unpack(frame);
    },
  };
}

/**
 * The fields of a message whose numbers may be NaN or ±Infinity: the sums of a task's metrics, which are
 * reported whatever they are. Everywhere else a non-finite number refuses the frame (a loss, a count, a
 * time, a field of that name deeper in a message).
 */
const NON_FINITE_FIELDS: ReadonlySet<string> = new Set(['metricSums']);

/**
 * `messageDepth`: the depth of the message, whose own NON_FINITE_FIELDS may hold NaN or ±Infinity;
 * `nonFinite`: `value` is an element of such a field.
 */
function assertPlainData(
  value: unknown,
  path: string,
  depth: number,
  messageDepth: number,
  nonFinite = false,
): void {
  if (depth > MAX_DEPTH) {
    throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `${path}: nested deeper than ${MAX_DEPTH} levels`);
  }
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!nonFinite && !Number.isFinite(value)) {
      throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `${path}: ${value} is not a finite number`);
    }
    return;
  }
  // Buffer is a Uint8Array subclass; other typed arrays only come from extensions.
  if (value instanceof Uint8Array && (value.constructor === Uint8Array || Buffer.isBuffer(value))) return;
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      assertPlainData(
        item,
        `${path}[${index}]`,
        depth + 1,
        messageDepth,
        nonFinite && typeof item === 'number',
      );
    }
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [key, item] of Object.entries(value)) {
      // A message's own field only: nowhere deeper (a task fingerprint, say) may hold NaN.
      const mayBeNonFinite = depth === messageDepth && NON_FINITE_FIELDS.has(key) && Array.isArray(item);
      assertPlainData(item, `${path}.${key}`, depth + 1, messageDepth, mayBeNonFinite);
    }
    return;
  }
  const kind = typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
  throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `${path}: ${kind} values are not allowed`);
}
