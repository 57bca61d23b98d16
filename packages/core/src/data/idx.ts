/**
 * The IDX file format (used by MNIST and its look-alikes): a 4-byte magic `00 00 <dtype> <ndims>`, then
 * `ndims` big-endian uint32 dimension sizes, then the data in row-major order. Only unsigned-byte data is
 * supported; files may be gzip-compressed (detected by content, not by name).
 */
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { CallosumError, ErrorCodes } from '../errors.js';
import { datasetInvalid } from './checks.js';

export interface IdxArray {
  readonly dims: readonly number[];
  /** Row-major values; a view into the file's bytes where possible, not a copy. */
  readonly data: Uint8Array;
}

export interface IdxReadOptions {
  /** Reject files whose header declares a different number of dimensions (1 for labels, 3 for images). */
  readonly ndims?: number;
}

const UNSIGNED_BYTE = 0x08;
const DTYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0x08, 'unsigned byte'],
  [0x09, 'signed byte'],
  [0x0b, '16-bit integer'],
  [0x0c, '32-bit integer'],
  [0x0d, '32-bit float'],
  [0x0e, '64-bit float'],
]);
const MAGIC_LENGTH = 4;
const DIM_LENGTH = 4;
const GZIP_MAGIC = [0x1f, 0x8b] as const;

const gunzipAsync = promisify(gunzip);

/** Reads an unsigned-byte IDX file, plain or gzip-compressed. Every failure is DATASET_INVALID naming `path`. */
export async function readIdxFile(path: string, options: IdxReadOptions = {}): Promise<IdxArray> {
  const fileBytes = await readBytes(path);
  const bytes = isGzip(fileBytes) ? await gunzipBytes(path, fileBytes) : fileBytes;
  return decodeIdx(bytes, path, options);
}

/** Parses IDX bytes already in memory; `source` names them in error messages. */
export function decodeIdx(bytes: Uint8Array, source: string, options: IdxReadOptions = {}): IdxArray {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < MAGIC_LENGTH) {
    throw datasetInvalid(
      source,
      `truncated: ${bytes.byteLength} bytes, too short for the ${MAGIC_LENGTH}-byte IDX magic`,
    );
  }
  if (view.getUint8(0) !== 0 || view.getUint8(1) !== 0) {
    throw datasetInvalid(
      source,
      `bad magic: expected 00 00 <dtype> <ndims>, found ${hexBytes(bytes.subarray(0, MAGIC_LENGTH))}`,
    );
  }
  const dtype = view.getUint8(2);
  if (dtype !== UNSIGNED_BYTE) {
    const name = DTYPE_NAMES.get(dtype);
    throw datasetInvalid(
      source,
      name === undefined
        ? `bad magic: unknown IDX data type byte ${hex(dtype)}`
        : `unsupported data type ${hex(dtype)} (${name}); only ${hex(UNSIGNED_BYTE)} (unsigned byte) is supported`,
    );
  }
  const ndims = view.getUint8(3);
  if (ndims === 0) throw datasetInvalid(source, 'bad magic: header declares 0 dimensions');
  if (options.ndims !== undefined && ndims !== options.ndims) {
    throw datasetInvalid(
      source,
      `expected ${options.ndims} dimension(s) (idx${options.ndims}), header declares ${ndims}`,
    );
  }
  const headerLength = MAGIC_LENGTH + DIM_LENGTH * ndims;
  if (bytes.byteLength < headerLength) {
    throw datasetInvalid(
      source,
      `truncated: header of ${ndims} dimension(s) needs ${headerLength} bytes, file has ${bytes.byteLength}`,
    );
  }

  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(MAGIC_LENGTH + DIM_LENGTH * i));
  const dataLength = elementCount(dims);
  const available = bytes.byteLength - headerLength;
  const expectation = `header says ${dims.join('×')} = ${dataLength} bytes of data`;
  if (available < dataLength)
    throw datasetInvalid(source, `truncated: ${expectation}, file has ${available}`);
  if (available > dataLength) {
    throw datasetInvalid(
      source,
      `trailing bytes: ${expectation}, file has ${available} (${available - dataLength} extra)`,
    );
  }
  return { dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerLength, dataLength) };
}

/** Serializes unsigned-byte data as an (uncompressed) IDX file; the inverse of `decodeIdx`. */
export function encodeIdx(array: IdxArray): Uint8Array {
  const { dims, data } = array;
  const dataLength = elementCount(dims);
  if (dims.length === 0 || dims.length > 0xff || dataLength !== data.length) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `encodeIdx: dims [${dims.join(', ')}] (1..255 of them) must multiply to data.length ${data.length}`,
    );
  }
  const headerLength = MAGIC_LENGTH + DIM_LENGTH * dims.length;
  const bytes = new Uint8Array(headerLength + dataLength);
  const view = new DataView(bytes.buffer);
  view.setUint8(2, UNSIGNED_BYTE);
  view.setUint8(3, dims.length);
  dims.forEach((size, i) => {
    view.setUint32(MAGIC_LENGTH + DIM_LENGTH * i, size);
  });
  bytes.set(data, headerLength);
  return bytes;
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? 'file not found' : `cannot read file: ${(error as Error).message}`;
    throw datasetInvalid(path, problem, error);
  }
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1];
}

async function gunzipBytes(path: string, compressed: Uint8Array): Promise<Uint8Array> {
  try {
    return await gunzipAsync(compressed);
  } catch (error) {
    throw datasetInvalid(path, `corrupt gzip data: ${(error as Error).message}`, error);
  }
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, size) => product * size, 1);
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join(' ');
}
