/**
 * float32 ⇄ 16-bit floats, as loops over the raw bits (a Uint32Array view of the float32s, a
 * Uint16Array of the halves): IEEE 754 binary16 (`float16`: 5 exponent bits, 10 mantissa bits, largest
 * finite value 65504) and `bfloat16` (the upper half of a float32: float32's range, 7 mantissa bits).
 * Narrowing rounds to nearest, ties to even, as IEEE 754's default and every hardware conversion do;
 * widening is exact. NaN stays NaN (quiet, with its sign), ±Infinity stays ±Infinity, and a finite value
 * too large for the format becomes ±Infinity, which the narrowing functions report.
 */

/** The largest finite float16; from 65520 up (the tie with 65536), float16 rounds to Infinity. */
export const FLOAT16_MAX = 65504;

const SIGN = 0x8000_0000;
const ABS = 0x7fff_ffff;
const FLOAT32_INFINITY = 0x7f80_0000;
/** float32 bits of 65520, from which on a value rounds to float16's Infinity. */
const FLOAT16_OVERFLOW = 0x477f_f000;
/** float32 bits of 2^-14, float16's smallest normal value. */
const FLOAT16_MIN_NORMAL = 0x3880_0000;
/** The float32 exponent bias minus float16's (127 − 15), in place. */
const REBIAS = 112 << 23;
/** float32 biased exponent of 2^-25: half of float16's smallest subnormal; anything below rounds to 0. */
const HALF_OF_SMALLEST_SUBNORMAL_EXPONENT = 102;
const FLOAT16_INFINITY = 0x7c00;
const FLOAT16_QUIET_NAN = 0x7e00;
const BFLOAT16_QUIET_BIT = 0x0040;

/**
 * Rounds `source` into `target` as float16 bits; returns the index of the first finite value that
 * became ±Infinity (|value| ≥ 65520), or -1.
 */
export function float32ToFloat16(source: Float32Array, target: Uint16Array): number {
  const bits = float32Bits(source, target);
  let firstOverflow = -1;
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i] as number;
    const sign = (x >>> 16) & 0x8000;
    const abs = x & ABS;
    let half: number;
    if (abs >= FLOAT16_OVERFLOW) {
      half = abs > FLOAT32_INFINITY ? FLOAT16_QUIET_NAN : FLOAT16_INFINITY;
      if (abs < FLOAT32_INFINITY && firstOverflow < 0) firstOverflow = i;
    } else if (abs >= FLOAT16_MIN_NORMAL) {
      // Rebias the exponent, then drop 13 mantissa bits adding just under half a unit plus the kept
      // lowest bit: a carry happens above the halfway point, and at it only towards an even result.
      half = (abs - REBIAS + 0x0fff + ((abs >>> 13) & 1)) >>> 13;
    } else {
      half = subnormalFloat16(abs);
    }
    target[i] = sign | half;
  }
  return firstOverflow;
}

/**
 * float16 bits of a float32 magnitude below 2^-14: a multiple of 2^-24 (up to 1024, which is 2^-14
 * itself), rounded to nearest even with integers only.
 */
function subnormalFloat16(abs: number): number {
  const exponent = abs >>> 23;
  if (exponent < HALF_OF_SMALLEST_SUBNORMAL_EXPONENT) return 0;
  // The value is mantissa × 2^(exponent − 150), i.e. mantissa × 2^-24 shifted right by 126 − exponent.
  const shift = 126 - exponent;
  const mantissa = (abs & 0x007f_ffff) | 0x0080_0000;
  const kept = mantissa >>> shift;
  return (mantissa + (1 << (shift - 1)) - 1 + (kept & 1)) >>> shift;
}

/**
 * Rounds `source` into `target` as bfloat16 bits (the float32's upper 16 bits, rounded); returns the
 * index of the first finite value that became ±Infinity (beyond float32's largest, ~3.39e38), or -1.
 */
export function float32ToBfloat16(source: Float32Array, target: Uint16Array): number {
  const bits = float32Bits(source, target);
  let firstOverflow = -1;
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i] as number;
    const abs = x & ABS;
    if (abs > FLOAT32_INFINITY) {
      target[i] = (x >>> 16) | BFLOAT16_QUIET_BIT;
      continue;
    }
    const rounded = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    if ((rounded & 0x7fff) === FLOAT32_INFINITY >>> 16 && abs < FLOAT32_INFINITY && firstOverflow < 0) {
      firstOverflow = i;
    }
    target[i] = rounded;
  }
  return firstOverflow;
}

/** float16 bits → float32, exactly. */
export function float16ToFloat32(source: Uint16Array, target: Float32Array): void {
  const table = float16Table();
  const bits = float32Bits(target, source);
  for (let i = 0; i < source.length; i++) bits[i] = table[source[i] as number] as number;
}

/** bfloat16 bits → float32, exactly: they are its upper half. */
export function bfloat16ToFloat32(source: Uint16Array, target: Float32Array): void {
  const bits = float32Bits(target, source);
  for (let i = 0; i < source.length; i++) bits[i] = (source[i] as number) << 16;
}

function float32Bits(floats: Float32Array, halves: Uint16Array): Uint32Array {
  if (floats.length !== halves.length) {
    throw new RangeError(`${floats.length} float32 values, ${halves.length} 16-bit ones`);
  }
  return new Uint32Array(floats.buffer, floats.byteOffset, floats.length);
}

/** float32 bits of every float16: 256 KiB, built on first use; a lookup beats decoding per element. */
let float16ToFloat32Bits: Uint32Array | undefined;

function float16Table(): Uint32Array {
  if (float16ToFloat32Bits === undefined) {
    float16ToFloat32Bits = new Uint32Array(0x1_0000);
    for (let half = 0; half < 0x1_0000; half++) float16ToFloat32Bits[half] = widenFloat16(half);
  }
  return float16ToFloat32Bits;
}

function widenFloat16(half: number): number {
  const sign = half & 0x8000 ? SIGN : 0;
  const exponent = (half >>> 10) & 0x1f;
  const mantissa = half & 0x03ff;
  if (exponent === 0x1f) return (sign | FLOAT32_INFINITY | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | (((exponent << 23) + REBIAS) | (mantissa << 13))) >>> 0;
  if (mantissa === 0) return sign;
  // A subnormal, mantissa × 2^-24: normalise it, so the leading 1 becomes float32's implicit bit.
  const shift = Math.clz32(mantissa) - 21;
  return (sign | ((113 - shift) << 23) | (((mantissa << shift) & 0x03ff) << 13)) >>> 0;
}
