/**
 * core's WebAssembly SIMD loops, compiled by AssemblyScript into dist/kernels.wasm at build time (the
 * `build` script; loaded by src/wasm/kernels.ts). The module imports its memory as `env.memory`: each
 * caller gives it the memory its vectors live in, addressed from byte 0 (no static data, stub runtime).
 *
 * Why the bits are the same as the plain JavaScript float64 loops: each kernel does exactly the float64
 * operations of the JavaScript formula, in the same order, and rounds to float32 where that formula
 * stores. IEEE-754 add, mul, div and sqrt round the same in wasm as in JavaScript, and wasm SIMD has no
 * fused multiply-add. Binaryen (asc's optimizer) keeps IEEE semantics at every -O level unless told
 * --fast-math, which the build does not pass; the bit tests (adam-simd.test.ts, vector-simd.test.ts)
 * check the compiled module against the plain loops.
 *
 * The tfjs kernels re-exported here run on the tfjs wasm backend's own memory
 * (src/backends/wasm-kernels/); each file says in which order it adds.
 */

export { biasAdd } from './bias-add';
export { columnSums } from './column-sums';
export { conv2dBackpropFilter } from './conv2d-backprop-filter';
export { maxPoolGrad2x2 } from './max-pool-grad';
export { reluGradient } from './relu-gradient';
export { transposeMatrices } from './transpose';

/** Two float32 at `address`, widened to float64. */
function loadPair(address: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(address));
}

/** Stores the float64 pair `value` at `address`, rounded to float32. */
function storePair(address: usize, value: v128): void {
  v128.store64_lane(address, f32x4.demote_f64x2_zero(value), 0);
}

/**
 * Adam's update over `pairs` float32 pairs at the given byte offsets, two parameters per iteration in
 * float64 lanes (f64x2), in place:
 *   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
 *   update = (m * firstMomentScale) / (sqrt(v * secondMomentScale) + epsilon)
 *   p = p - learningRate * (update + weightDecay * p)
 */
export function adam(
  pairs: i32,
  params: usize,
  gradient: usize,
  firstMoment: usize,
  secondMoment: usize,
  beta1: f64,
  beta2: f64,
  oneMinusBeta1: f64,
  oneMinusBeta2: f64,
  firstMomentScale: f64,
  secondMomentScale: f64,
  epsilon: f64,
  learningRate: f64,
  weightDecay: f64,
): void {
  const end = (<usize>pairs) << 3;
  const beta1s = f64x2.splat(beta1);
  const beta2s = f64x2.splat(beta2);
  const oneMinusBeta1s = f64x2.splat(oneMinusBeta1);
  const oneMinusBeta2s = f64x2.splat(oneMinusBeta2);
  const firstMomentScales = f64x2.splat(firstMomentScale);
  const secondMomentScales = f64x2.splat(secondMomentScale);
  const epsilons = f64x2.splat(epsilon);
  const learningRates = f64x2.splat(learningRate);
  const weightDecays = f64x2.splat(weightDecay);
  for (let at: usize = 0; at < end; at += 8) {
    const g = loadPair(gradient + at);
    const p = loadPair(params + at);
    const m = f64x2.add(f64x2.mul(beta1s, loadPair(firstMoment + at)), f64x2.mul(oneMinusBeta1s, g));
    const v = f64x2.add(
      f64x2.mul(beta2s, loadPair(secondMoment + at)),
      f64x2.mul(f64x2.mul(oneMinusBeta2s, g), g),
    );
    storePair(firstMoment + at, m);
    storePair(secondMoment + at, v);
    const update = f64x2.div(
      f64x2.mul(m, firstMomentScales),
      f64x2.add(f64x2.sqrt(f64x2.mul(v, secondMomentScales)), epsilons),
    );
    storePair(
      params + at,
      f64x2.sub(p, f64x2.mul(learningRates, f64x2.add(update, f64x2.mul(weightDecays, p)))),
    );
  }
}

/**
 * 1 if every float32 in [start, end) (whole 16-byte blocks) is finite, else 0. x × 0 is ±0 for a finite
 * x and NaN otherwise; the lane sums of those products are all 0 exactly when every element is finite.
 */
export function allFinite(start: usize, end: usize): bool {
  const zero = f32x4.splat(0);
  let sums = zero;
  for (let at = start; at < end; at += 16) {
    sums = f32x4.add(sums, f32x4.mul(v128.load(at), zero));
  }
  return i32x4.all_true(f32x4.eq(sums, zero));
}

/**
 * For the float32 pairs from `first` to `end`: writes float32(float64(a) × scale) one `stride` further,
 * where a is at the position.
 */
export function scaleOne(first: usize, stride: usize, end: usize, scale: f64): void {
  const scales = f64x2.splat(scale);
  for (let at = first; at < end; at += 8) {
    storePair(at + stride, f64x2.mul(loadPair(at), scales));
  }
}

/**
 * For the float32 pairs from `first` to `end`: writes float32((float64(a) + float64(b)) × scale) two
 * `stride`s further, where a is at the position and b one `stride` further.
 */
export function scaleSumOfTwo(first: usize, stride: usize, end: usize, scale: f64): void {
  const scales = f64x2.splat(scale);
  for (let at = first; at < end; at += 8) {
    storePair(at + stride + stride, f64x2.mul(f64x2.add(loadPair(at), loadPair(at + stride)), scales));
  }
}

/**
 * For bench:profile's SIMD128 arithmetic limit: `iterations` rounds of acc = acc × c + c (f32x4) on 12
 * independent accumulators, 8 FLOP each per round; returns lane 0 of their sum so none is dead. The
 * accumulators start at different values so that the optimizer cannot merge identical chains.
 */
export function simdPeak(iterations: i32, value: f32): f32 {
  const c = f32x4.splat(value);
  let a0 = f32x4.splat(value + 0);
  let a1 = f32x4.splat(value + 1);
  let a2 = f32x4.splat(value + 2);
  let a3 = f32x4.splat(value + 3);
  let a4 = f32x4.splat(value + 4);
  let a5 = f32x4.splat(value + 5);
  let a6 = f32x4.splat(value + 6);
  let a7 = f32x4.splat(value + 7);
  let a8 = f32x4.splat(value + 8);
  let a9 = f32x4.splat(value + 9);
  let a10 = f32x4.splat(value + 10);
  let a11 = f32x4.splat(value + 11);
  for (let i = iterations; i !== 0; i--) {
    a0 = f32x4.add(f32x4.mul(a0, c), c);
    a1 = f32x4.add(f32x4.mul(a1, c), c);
    a2 = f32x4.add(f32x4.mul(a2, c), c);
    a3 = f32x4.add(f32x4.mul(a3, c), c);
    a4 = f32x4.add(f32x4.mul(a4, c), c);
    a5 = f32x4.add(f32x4.mul(a5, c), c);
    a6 = f32x4.add(f32x4.mul(a6, c), c);
    a7 = f32x4.add(f32x4.mul(a7, c), c);
    a8 = f32x4.add(f32x4.mul(a8, c), c);
    a9 = f32x4.add(f32x4.mul(a9, c), c);
    a10 = f32x4.add(f32x4.mul(a10, c), c);
    a11 = f32x4.add(f32x4.mul(a11, c), c);
  }
  const sum = f32x4.add(
    f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), a6)),
    f32x4.add(f32x4.add(f32x4.add(a7, a8), f32x4.add(a9, a10)), a11),
  );
  return f32x4.extract_lane(sum, 0);
}
