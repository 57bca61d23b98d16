/**
 * ReLU's gradient in one pass: out = dy × step(x), where step(x) is NaN for a NaN x, 1 for x > 0 and 0
 * otherwise, as tfjs computes it with Step, Cast and Multiply (three passes over a layer's activation).
 * One float32 multiplication per element by the same factor, so the same bits (NaN payloads aside).
 */
export function reluGradient(x: usize, dy: usize, out: usize, count: i32): void {
  const bytes = (<usize>count) << 2;
  const vectorEnd = bytes & ~(<usize>15);
  let at: usize = 0;
  for (; at < vectorEnd; at += 16) {
    v128.store(out + at, f32x4.mul(v128.load(dy + at), stepOf(v128.load(x + at))));
  }
  // The last count % 4 elements one by one, each in lane 0 of the same operations.
  for (; at < bytes; at += 4) {
    const product = f32x4.mul(f32x4.splat(load<f32>(dy + at)), stepOf(f32x4.splat(load<f32>(x + at))));
    store<f32>(out + at, f32x4.extract_lane(product, 0));
  }
}

/** step(x) lane by lane: NaN where x is NaN, 1 where x > 0, else 0. */
function stepOf(x: v128): v128 {
  const zero = f32x4.splat(0);
  const step = v128.bitselect(f32x4.splat(1), zero, f32x4.gt(x, zero));
  return v128.bitselect(f32x4.splat(NaN), step, f32x4.ne(x, x));
}
