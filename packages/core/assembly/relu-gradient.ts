/**
 * ReLU's gradient in one pass: out = dy × step(x), where step(x) is NaN for a NaN x, 1 for x > 0 and 0
 * otherwise, as tfjs computes it with Step, Cast and Multiply (three passes over a layer's activation).
 * One float32 multiplication per element by the same factor, so the same bits (NaN payloads aside).
 */
export function reluGradient(x: usize, dy: usize, out: usize, count: i32): void {
  const bytes = (<usize>count) << 2;
  const vectorEnd = bytes & ~(<usize>15);
  const zero = f32x4.splat(0);
  const one = f32x4.splat(1);
  const notANumber = f32x4.splat(NaN);
  let at: usize = 0;
  for (; at < vectorEnd; at += 16) {
    const value = v128.load(x + at);
    const step = v128.bitselect(one, zero, f32x4.gt(value, zero));
    const factor = v128.bitselect(notANumber, step, f32x4.ne(value, value));
    v128.store(out + at, f32x4.mul(v128.load(dy + at), factor));
  }
  for (; at < bytes; at += 4) {
    const value = load<f32>(x + at);
    const factor: f32 = value != value ? NaN : value > 0 ? 1 : 0;
    store<f32>(out + at, load<f32>(dy + at) * factor);
  }
}
