import { describe, expect, it } from 'vitest';
import {
  bfloat16ToFloat32,
  FLOAT16_MAX,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
} from './half-floats.js';

/** float32 from its bits, through a DataView: independent of the code under test. */
function fromBits(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits >>> 0);
  return view.getFloat32(0);
}

function toFloat16(values: readonly number[]): { bits: number[]; overflow: number } {
  const halves = new Uint16Array(values.length);
  const overflow = float32ToFloat16(Float32Array.from(values), halves);
  return { bits: [...halves], overflow };
}

function toBfloat16(values: readonly number[]): { bits: number[]; overflow: number } {
  const halves = new Uint16Array(values.length);
  const overflow = float32ToBfloat16(Float32Array.from(values), halves);
  return { bits: [...halves], overflow };
}

/**
 * The value of float16 bits by IEEE 754's definition, in float64 arithmetic: (−1)^s × 2^(e − 15) ×
 * (1 + m/1024), or 2^-14 × m/1024 for e = 0. A second method, to check the lookup table against.
 */
function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  if (exponent === 0) return sign * 2 ** -14 * (mantissa / 1024);
  return sign * 2 ** (exponent - 15) * (1 + mantissa / 1024);
}

/** A seeded xorshift32 stream of 32-bit patterns, so a failure is reproducible. */
function* randomBits(count: number, seed = 0x9e3779b9): Generator<number> {
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    yield state;
  }
}

describe('float32 → float16', () => {
  it('rounds known values as IEEE 754 binary16 does', () => {
    const cases: [number, number, string][] = [
      [1, 0x3c00, 'exponent 15, mantissa 0'],
      [-2, 0xc000, 'sign, exponent 16'],
      [0.5, 0x3800, 'exponent 14'],
      [FLOAT16_MAX, 0x7bff, '65504 = 2^15 × (1 + 1023/1024), the largest finite'],
      [65519, 0x7bff, 'below the halfway point 65520 between 65504 and 2^16'],
      [2 ** -14, 0x0400, 'the smallest normal'],
      [2 ** -14 - 2 ** -24, 0x03ff, 'the largest subnormal, 1023 × 2^-24'],
      [2 ** -24, 0x0001, 'the smallest subnormal'],
      [1.5 * 2 ** -24, 0x0002, 'halfway between 1 and 2 units of 2^-24: to the even 2'],
      [2.5 * 2 ** -24, 0x0002, 'halfway between 2 and 3 units: to the even 2'],
      [2 ** -25, 0x0000, 'halfway between 0 and the smallest subnormal: to the even 0'],
      [2 ** -25 + 2 ** -40, 0x0001, 'just above that halfway point'],
      [2 ** -30, 0x0000, 'far below: 0'],
      [1e-45, 0x0000, 'a float32 subnormal: 0'],
      // 1/3 = 1.0101…b × 2^-2: exponent 13, mantissa 0101010101, and the rest (0101…) is below half.
      [1 / 3, 0x3555, '1/3 rounds down to 0.333251953125'],
      [1 + 2 ** -11, 0x3c00, 'halfway between 1 and 1 + 2^-10: to the even 1'],
      [1 + 3 * 2 ** -11, 0x3c02, 'halfway between 1 + 2^-10 and 1 + 2^-9: to the even mantissa 2'],
      [2049, 0x6800, 'spacing 2 at 2048: halfway between 2048 and 2050, to the even 2048'],
      [2051, 0x6802, 'halfway between 2050 and 2052, to the even 2052'],
      [0.1, 0x2e66, '0.1 = 1.1001100110011…b × 2^-4: mantissa 1001100110, the rest 0110… below half'],
      [-0, 0x8000, 'negative zero keeps its sign'],
      [0, 0x0000, 'zero'],
    ];
    const { bits, overflow } = toFloat16(cases.map(([value]) => value));
    expect(bits.map((half) => half.toString(16))).toEqual(cases.map(([, half]) => half.toString(16)));
    expect(overflow).toBe(-1);
    // What they mean, by the definition: the expectations themselves are right.
    expect(float16Value(0x3555)).toBe(0.333251953125);
    expect(float16Value(0x2e66)).toBe(0.0999755859375);
    expect(float16Value(0x7bff)).toBe(65504);
  });

  it('rounds 65520 and beyond to Infinity, and reports the first finite value that overflowed', () => {
    // 65520 is halfway between 65504 (mantissa 1023, odd) and 2^16 (not representable: Infinity).
    const { bits, overflow } = toFloat16([1, Number.POSITIVE_INFINITY, 65520, -1e6, 3e38]);
    expect(bits).toEqual([0x3c00, 0x7c00, 0x7c00, 0xfc00, 0x7c00]);
    expect(overflow).toBe(2);
    expect(toFloat16([Number.NEGATIVE_INFINITY, 65519.99]).overflow).toBe(-1);
  });

  it('keeps NaN a NaN, with its sign', () => {
    // Written as bits: a NaN that passes through a JavaScript number may lose its sign and payload.
    const bits = Uint32Array.from([0x7fc00000, 0xffc00001, 0x7f800001]);
    const halves = new Uint16Array(bits.length);
    expect(float32ToFloat16(new Float32Array(bits.buffer), halves)).toBe(-1);
    for (const half of halves) expect(Number.isNaN(float16Value(half))).toBe(true);
    expect([...halves].map((half) => half & 0x8000)).toEqual([0, 0x8000, 0]);
  });

  it('agrees with the nearest float16 found by search, ties to even, for a million float32 patterns', () => {
    // Every non-negative finite float16 in increasing order (bits 0 … 0x7bff are monotonic), and
    // Infinity as the step beyond 65504: rounding to it is what IEEE 754 calls overflow.
    const values = Array.from({ length: 0x7c00 }, (_, bits) => float16Value(bits));
    values.push(2 ** 16);
    const nearest = (magnitude: number): number => {
      if (magnitude >= 2 ** 16) return 0x7c00;
      let low = 0;
      let high = values.length - 1;
      while (high - low > 1) {
        const middle = (low + high) >> 1;
        if (values[middle]! <= magnitude) low = middle;
        else high = middle;
      }
      const below = magnitude - values[low]!;
      const above = values[high]! - magnitude;
      if (below < above) return low;
      if (above < below) return high;
      return low % 2 === 0 ? low : high;
    };
    // Patterns spread over float16's range and around it: exponents 2^-27 … 2^17.
    const patterns = [...randomBits(1_000_000)].map((bits) => {
      const exponent = 100 + (bits % 45);
      return ((bits & 0x8000_0000) | (exponent << 23) | ((bits >>> 7) & 0x7f_ffff)) >>> 0;
    });
    const source = Float32Array.from(patterns, fromBits);
    const halves = new Uint16Array(source.length);
    float32ToFloat16(source, halves);
    const mismatches = patterns.filter((bits, i) => {
      const expected = nearest(Math.abs(source[i]!)) | ((bits >>> 16) & 0x8000);
      return halves[i] !== expected;
    });
    expect(mismatches.slice(0, 5).map((bits) => bits.toString(16))).toEqual([]);
  });
});

describe('float16 → float32', () => {
  it('is exact for every one of the 65,536 patterns, and rounds back to the same bits', () => {
    const all = Uint16Array.from({ length: 0x1_0000 }, (_, bits) => bits);
    const widened = new Float32Array(all.length);
    float16ToFloat32(all, widened);
    const wrong = [...all].filter(
      (bits) => !Object.is(widened[bits], float16Value(bits)) && !isNaNPair(bits),
    );
    expect(wrong.map((bits) => bits.toString(16))).toEqual([]);
    const back = new Uint16Array(all.length);
    float32ToFloat16(widened, back);
    const changed = [...all].filter((bits) => back[bits] !== bits && !Number.isNaN(float16Value(bits)));
    expect(changed).toEqual([]);

    function isNaNPair(bits: number): boolean {
      return Number.isNaN(widened[bits]!) && Number.isNaN(float16Value(bits));
    }
  });

  it('decodes the landmarks', () => {
    const widened = new Float32Array(8);
    float16ToFloat32(
      Uint16Array.from([0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0x7e00]),
      widened,
    );
    expect([...widened]).toEqual([
      2 ** -24,
      1023 * 2 ** -24,
      2 ** -14,
      65504,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      -0,
      Number.NaN,
    ]);
    expect(Object.is(widened[6], -0)).toBe(true);
  });
});

describe('float32 ⇄ bfloat16', () => {
  it('rounds known values: the upper 16 bits of the float32, to nearest even', () => {
    const cases: [number, number, string][] = [
      [1, 0x3f80, '0x3f800000'],
      [-2, 0xc000, '0xc0000000'],
      // 1/3 is 0x3eaaaaab: the lower half 0xaaab is above 0x8000, so it rounds up.
      [1 / 3, 0x3eab, '0x3eaaaaab rounds up'],
      [fromBits(0x3f808000), 0x3f80, 'halfway between 0x3f80 and 0x3f81: to the even 0x3f80'],
      [fromBits(0x3f818000), 0x3f82, 'halfway between 0x3f81 and 0x3f82: to the even 0x3f82'],
      [fromBits(0x3f808001), 0x3f81, 'just above halfway'],
      [65520, 0x4780, '0x477ff000 rounds up to 65536: finite, float32 range'],
      [2 ** -24, 0x3380, 'no subnormal here: 0x33800000'],
      [fromBits(0x00000001), 0x0000, 'the smallest float32 subnormal rounds to 0'],
      [-0, 0x8000, 'negative zero'],
      [Number.NEGATIVE_INFINITY, 0xff80, '-Infinity'],
    ];
    const { bits, overflow } = toBfloat16(cases.map(([value]) => value));
    expect(bits.map((half) => half.toString(16))).toEqual(cases.map(([, half]) => half.toString(16)));
    expect(overflow).toBe(-1);
  });

  it('overflows only beyond float32 range (the largest float32 rounds up), keeps NaN, and widens exactly', () => {
    const { bits, overflow } = toBfloat16([fromBits(0x7f7f7fff), fromBits(0x7f7fffff)]);
    expect(bits).toEqual([0x7f7f, 0x7f80]);
    expect(overflow).toBe(1);
    const nans = new Uint16Array(2);
    float32ToBfloat16(new Float32Array(Uint32Array.from([0x7f800001, 0xffc00000]).buffer), nans);
    expect([...nans].map((half) => Number.isNaN(fromBits(half << 16)))).toEqual([true, true]);
    expect(nans[1]! & 0x8000).toBe(0x8000);
    const widened = new Float32Array(3);
    bfloat16ToFloat32(Uint16Array.from([0x3eab, 0x7f7f, 0x8001]), widened);
    expect([...widened]).toEqual([fromBits(0x3eab0000), fromBits(0x7f7f0000), fromBits(0x80010000)]);
  });

  it('agrees with the nearer of the two neighbours compared in float64, ties to even, for a million patterns', () => {
    const source = Float32Array.from(randomBits(1_000_000, 12_345), (bits) => {
      const value = fromBits(bits);
      return Number.isNaN(value) ? 0 : value;
    });
    const halves = new Uint16Array(source.length);
    float32ToBfloat16(source, halves);
    const bitsOf = new Uint32Array(source.buffer);
    const mismatches: number[] = [];
    for (let i = 0; i < source.length; i++) {
      const truncated = bitsOf[i]! >>> 16;
      const low = fromBits(truncated << 16);
      // Beyond the largest finite value, IEEE 754 rounds as if the exponent went on: 2^128 is the
      // neighbour, and rounding to it is overflow to Infinity.
      const next = fromBits((truncated + 1) << 16);
      const high = Number.isFinite(next) ? next : Math.sign(next) * 2 ** 128;
      const x = source[i]!;
      const below = Math.abs(x - low);
      const above = Math.abs(high - x);
      const expected =
        below < above || (below === above && truncated % 2 === 0) || !Number.isFinite(x)
          ? truncated
          : truncated + 1;
      if (halves[i] !== (expected & 0xffff)) mismatches.push(bitsOf[i]!);
    }
    expect(mismatches.slice(0, 5).map((bits) => bits.toString(16))).toEqual([]);
  });

  it('refuses vectors of different lengths', () => {
    expect(() => float32ToFloat16(new Float32Array(2), new Uint16Array(3))).toThrow(RangeError);
  });
});
