import { describe, expect, it } from 'vitest';
import { nativeKernels } from '../backends/native-kernels.js';
import { seededRandom } from '../optim/test-support.js';
import { type VectorPasses, wasmVectorPasses } from './vector-simd.js';

const native = nativeKernels();
const implementations: [string, VectorPasses][] = [
  ['WebAssembly SIMD', wasmVectorPasses()],
  ...(native === undefined ? [] : [["core's native kernels", native] as [string, VectorPasses]]),
];

/** Values of every magnitude float32 has, subnormals included, with random signs. */
function randomValues(seed: number, length: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length }, () => (random() < 0.5 ? -1 : 1) * 2 ** (-149 + 276 * random()));
}

describe.each(implementations)('%s', (_name, passes) => {
  describe('allFinite', () => {
    it('says yes for finite values of any length, including one that leaves a partial block', () => {
      for (const length of [0, 1, 3, 4, 5, 1001]) {
        expect(passes.allFinite(randomValues(length, length))).toBe(true);
      }
    });

    it('finds one NaN or infinity anywhere, also in the last partial block', () => {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        for (const at of [0, 1, 500, 999, 1000]) {
          const values = randomValues(at, 1001);
          values[at] = bad;
          expect(passes.allFinite(values)).toBe(false);
        }
      }
    });

    it('is not fooled by what an earlier, longer call left in its memory', () => {
      const long = randomValues(1, 64);
      long[10] = Number.NaN;
      expect(passes.allFinite(long)).toBe(false);
      expect(passes.allFinite(randomValues(2, 9))).toBe(true);
    });
  });

  describe('scaleInto', () => {
    it('gives the bits of the float64 product rounded to float32, element by element', () => {
      for (const [length, count] of [
        [1, 3],
        [7, 128],
        [100_003, 96],
        [4096, 1],
      ] as const) {
        const values = randomValues(length, length);
        const scale = 1 / count;
        const expected = values.map((value) => value * scale);
        const into = new Float32Array(length).fill(Number.NaN);
        passes.scaleInto(into, values, scale);
        expect(new Uint32Array(into.buffer)).toEqual(new Uint32Array(expected.buffer));
      }
    });

    it('leaves its input alone and writes only `into`', () => {
      const values = randomValues(5, 10);
      const copy = values.slice();
      const into = new Float32Array(10);
      passes.scaleInto(into, values, 0.5);
      expect(values).toEqual(copy);
      expect(into[3]).toBe(Math.fround((values[3] as number) * 0.5));
    });
  });

  describe('addScaled', () => {
    it('gives the bits of the float64 sum times the scale, rounded to float32', () => {
      for (const [length, count] of [
        [1, 3],
        [7, 128],
        [100_003, 96],
      ] as const) {
        const a = randomValues(length, length);
        const b = randomValues(length + 1, length);
        const scale = 1 / count;
        const expected = a.map((value, i) => (value + (b[i] as number)) * scale);
        const into = new Float32Array(length).fill(Number.NaN);
        passes.addScaled(into, a, b, scale);
        expect(new Uint32Array(into.buffer)).toEqual(new Uint32Array(expected.buffer));
      }
    });

    it('with scale 1, written over its first input, gives the bits of a plain float32 sum (addSimd)', () => {
      const a = randomValues(11, 100_003);
      const b = randomValues(12, 100_003);
      // Sums that overflow to infinity, and infinities that meet, as a plain loop has them.
      a.set([3e38, -3e38, Number.POSITIVE_INFINITY, Number.NaN], 50);
      b.set([3e38, -3e38, Number.NEGATIVE_INFINITY, 1], 50);
      const expected = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) expected[i] = (a[i] as number) + (b[i] as number);
      passes.addScaled(a, a, b, 1);
      expect(new Uint32Array(a.buffer)).toEqual(new Uint32Array(expected.buffer));
    });
  });
});
