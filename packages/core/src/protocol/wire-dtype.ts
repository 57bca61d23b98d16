import { CallosumError, ErrorCodes } from '../errors.js';
import {
  bfloat16ToFloat32,
  FLOAT16_MAX,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
} from './half-floats.js';
import { fromWireTensor, toWireTensor, type WireTensor } from './tensor.js';
import type { ProtocolVersion } from './version.js';

/**
 * The element type a run's weights and gradients travel in (protocol 1.6): `float32` as computed, or
 * rounded to a 16-bit float, which halves the bytes of every step. Only what travels is rounded: the
 * coordinator's weights and optimizer stay float32, and so does every gradient once received.
 */
export const WIRE_DTYPES = ['float32', 'float16', 'bfloat16'] as const;
export type WireDtype = (typeof WIRE_DTYPES)[number];
export const DEFAULT_WIRE_DTYPE: WireDtype = 'float32';

/** 1.6 added the 16-bit wire dtypes; a run in float32 takes any worker the protocol minimum admits. */
const HALF_FLOATS_PROTOCOL: ProtocolVersion = { major: 1, minor: 6 };

const narrow = { float16: float32ToFloat16, bfloat16: float32ToBfloat16 } as const;
const widen = { float16: float16ToFloat32, bfloat16: bfloat16ToFloat32 } as const;
const largest = { float16: FLOAT16_MAX, bfloat16: 3.3895313892515355e38 } as const;

/**
 * A float32 vector (weights, a gradient) as a wire tensor of `dtype`, shape [length]. float32 is a view
 * of `values`, as always. A 16-bit dtype rounds to nearest even, into `into` if given (2 bytes per
 * value, 2-aligned: the payload of the frame that will carry it, which spares an allocation and a copy)
 * or else new memory, and throws NON_FINITE (naming `what`, the element and the dtype) when a finite
 * value is too large for it: an Infinity that only the rounding made must never reach the other side
 * as if it had been computed.
 */
export function floatsToWire(
  values: Float32Array,
  dtype: WireDtype,
  what: string,
  into?: Uint8Array,
): WireTensor {
  if (dtype === 'float32') return toWireTensor(values, [values.length]);
  const halves =
    into === undefined
      ? new Uint16Array(values.length)
      : new Uint16Array(into.buffer, into.byteOffset, values.length);
  const overflow = narrow[dtype](values, halves);
  if (overflow >= 0) throw wireOverflow(what, overflow, values[overflow] as number, dtype);
  return {
    dtype,
    shape: [values.length],
    bytes: new Uint8Array(halves.buffer, halves.byteOffset, halves.byteLength),
  };
}

/**
 * The float32 vector a wire tensor of `dtype` carries (exactly: every 16-bit value is a float32).
 * Throws MALFORMED_MESSAGE if it is of another dtype or shape, as fromWireTensor does.
 */
export function floatsFromWire(
  tensor: WireTensor,
  dtype: WireDtype,
  expectedShape?: readonly number[],
): Float32Array {
  if (dtype === 'float32') return fromWireTensor(tensor, dtype, expectedShape);
  const halves = fromWireTensor(tensor, dtype, expectedShape);
  const values = new Float32Array(halves.length);
  widen[dtype](halves, values);
  return values;
}

/**
 * Rounds `values` in place to what they become on the wire in `dtype` (nothing for float32), so that a
 * sender keeps exactly what its receivers read; throws NON_FINITE as floatsToWire does.
 */
export function roundForWire(values: Float32Array, dtype: WireDtype, what: string): void {
  if (dtype === 'float32') return;
  const halves = new Uint16Array(values.length);
  const overflow = narrow[dtype](values, halves);
  if (overflow >= 0) throw wireOverflow(what, overflow, values[overflow] as number, dtype);
  widen[dtype](halves, values);
}

/**
 * For the message rejecting `values` received in `dtype`: an Infinity in a float16 vector may be a
 * finite value beyond float16's range, which a peer that does not check before sending lets through.
 * Empty for NaN, and for the other dtypes, whose range is float32's.
 */
export function wireOverflowHint(dtype: WireDtype, values: Float32Array): string {
  if (dtype !== 'float16' || !values.some((value) => Math.abs(value) === Number.POSITIVE_INFINITY)) return '';
  return ` (the run sends float16, whose largest value is ${FLOAT16_MAX}: an Infinity may be a larger gradient; wire dtype bfloat16 keeps float32's range)`;
}

/** The oldest protocol that can serve a run with this wire dtype, and what it added. */
export function protocolForWireDtype(
  dtype: WireDtype,
): { readonly version: ProtocolVersion; readonly feature: string } | undefined {
  return dtype === 'float32'
    ? undefined
    : { version: HALF_FLOATS_PROTOCOL, feature: `${dtype} weights and gradients` };
}

function wireOverflow(what: string, index: number, value: number, dtype: Exclude<WireDtype, 'float32'>) {
  const instead =
    dtype === 'float16'
      ? "use wire dtype bfloat16 (--wire-dtype bfloat16), which keeps float32's range, or float32"
      : 'use wire dtype float32 (--wire-dtype float32)';
  return new CallosumError(
    ErrorCodes.NON_FINITE,
    `${what}[${index}] = ${value} overflows ${dtype}, the run's wire dtype (largest finite value ${largest[dtype]}): ${instead}`,
  );
}
