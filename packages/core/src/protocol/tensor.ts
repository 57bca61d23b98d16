import { CallosumError, ErrorCodes } from '../errors.js';

/**
 * Element types that cross the wire, with their sizes in bytes. The 16-bit floats (1.6) carry weights
 * and gradients only, in a run's wire dtype (wire-dtype.ts); their elements are read as raw bits.
 */
export const TENSOR_DTYPES = { float32: 4, int32: 4, uint8: 1, float16: 2, bfloat16: 2 } as const;
export type TensorDtype = keyof typeof TENSOR_DTYPES;

/** A tensor on the wire: raw little-endian bytes, described by dtype and shape. */
export interface WireTensor {
  readonly dtype: TensorDtype;
  readonly shape: number[];
  readonly bytes: Uint8Array;
}

type ArrayFor<D extends TensorDtype> = D extends 'float32'
  ? Float32Array
  : D extends 'int32'
    ? Int32Array
    : D extends 'uint8'
      ? Uint8Array
      : Uint16Array;

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

export function toWireTensor(values: Float32Array | Int32Array | Uint8Array, shape: number[]): WireTensor {
  const dtype: TensorDtype =
    values instanceof Float32Array ? 'float32' : values instanceof Int32Array ? 'int32' : 'uint8';
  if (elementCount(shape) !== values.length) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `shape [${shape.join(', ')}] has ${elementCount(shape)} elements, the array ${values.length}`,
    );
  }
  return { dtype, shape, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/**
 * Reads a wire tensor of the expected dtype (and, if given, shape) as a typed array. Bytes decoded
 * from a frame may start at any offset: when they are aligned for the dtype the result is a view of
 * them (frames are never reused, so the view stays valid), otherwise an aligned copy. Copying 2.8 MB
 * per message is cheap; allocating it every step is not (garbage collections and page faults).
 */
export function fromWireTensor<D extends TensorDtype>(
  tensor: WireTensor,
  dtype: D,
  expectedShape?: readonly number[],
): ArrayFor<D> {
  const what = `tensor [${tensor.shape.join(', ')}] ${tensor.dtype}`;
  if (tensor.dtype !== dtype) {
    throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `${what}: expected dtype ${dtype}`);
  }
  if (expectedShape !== undefined && !sameShape(tensor.shape, expectedShape)) {
    throw new CallosumError(
      ErrorCodes.MALFORMED_MESSAGE,
      `${what}: expected shape [${expectedShape.join(', ')}]`,
    );
  }
  const byteLength = elementCount(tensor.shape) * TENSOR_DTYPES[dtype];
  if (tensor.bytes.byteLength !== byteLength) {
    throw new CallosumError(
      ErrorCodes.MALFORMED_MESSAGE,
      `${what}: needs ${byteLength} bytes, carries ${tensor.bytes.byteLength}`,
    );
  }
  const aligned =
    tensor.bytes.byteOffset % TENSOR_DTYPES[dtype] === 0 ? tensor.bytes : new Uint8Array(tensor.bytes); // copies
  const { buffer, byteOffset } = aligned;
  const length = byteLength / TENSOR_DTYPES[dtype];
  if (dtype === 'float32') return new Float32Array(buffer, byteOffset, length) as ArrayFor<D>;
  if (dtype === 'int32') return new Int32Array(buffer, byteOffset, length) as ArrayFor<D>;
  if (dtype === 'uint8') return new Uint8Array(buffer, byteOffset, length) as ArrayFor<D>;
  return new Uint16Array(buffer, byteOffset, length) as ArrayFor<D>;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((dim, index) => dim === b[index]);
}
