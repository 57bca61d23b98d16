/**
 * The gradient of a 2×2, stride-2 max pool whose windows tile the NHWC input exactly (input height and
 * width twice the output's, no padding). Every dx element belongs to one window and is written once:
 * dy at its window's first maximal element in row-major order (top-left, top-right, bottom-left,
 * bottom-right), 0 elsewhere. NaN is never maximal (`>` is false for it), and -Infinity never beats the
 * starting value -Infinity, so a window of only NaN and -Infinity passes no gradient on: the rule of the
 * cpu backend and of max-pool-grad.ts's JavaScript loops.
 *
 * Four channels at a time as lane masks (the comparisons select, they never branch), the last
 * channels % 4 one at a time by the same rule.
 */
export function maxPoolGrad2x2(
  x: usize,
  dy: usize,
  dx: usize,
  batch: i32,
  outHeight: i32,
  outWidth: i32,
  channels: i32,
): void {
  const pixelBytes = (<usize>channels) << 2;
  const rowBytes = pixelBytes * ((<usize>outWidth) << 1);
  const vectorEnd = pixelBytes & ~(<usize>15);
  let dyAt = dy;
  for (let row = 0; row < batch * outHeight; row++) {
    // Output row `row` of the flattened (batch, outRow) axis reads input rows 2·row and 2·row + 1.
    let topLeft = <usize>row * (rowBytes << 1);
    for (let outCol = 0; outCol < outWidth; outCol++, topLeft += pixelBytes << 1, dyAt += pixelBytes) {
      const topRight = topLeft + pixelBytes;
      const bottomLeft = topLeft + rowBytes;
      const bottomRight = bottomLeft + pixelBytes;
      let at: usize = 0;
      for (; at < vectorEnd; at += 16) {
        routeFourChannels(x, dx, dyAt + at, topLeft + at, topRight + at, bottomLeft + at, bottomRight + at);
      }
      for (; at < pixelBytes; at += 4) {
        routeOneChannel(x, dx, dyAt + at, topLeft + at, topRight + at, bottomLeft + at, bottomRight + at);
      }
    }
  }
}

/** One window for four channels; the four positions are byte offsets into both x and dx. */
function routeFourChannels(x: usize, dx: usize, dyAt: usize, a: usize, b: usize, c: usize, d: usize): void {
  const negativeInfinity = f32x4.splat(-Infinity);
  const valueA = v128.load(x + a);
  const valueB = v128.load(x + b);
  const valueC = v128.load(x + c);
  const valueD = v128.load(x + d);
  const aBeats = f32x4.gt(valueA, negativeInfinity);
  let max = v128.bitselect(valueA, negativeInfinity, aBeats);
  const bBeats = f32x4.gt(valueB, max);
  max = v128.bitselect(valueB, max, bBeats);
  const cBeats = f32x4.gt(valueC, max);
  max = v128.bitselect(valueC, max, cBeats);
  const dBeats = f32x4.gt(valueD, max);
  // A position wins if it beat the maximum so far and no later position beat it.
  const dWins = dBeats;
  const cWins = v128.andnot(cBeats, dWins);
  const laterThanB = v128.or(cBeats, dWins);
  const bWins = v128.andnot(bBeats, laterThanB);
  const aWins = v128.andnot(aBeats, v128.or(bBeats, laterThanB));
  const gradient = v128.load(dyAt);
  v128.store(dx + a, v128.and(gradient, aWins));
  v128.store(dx + b, v128.and(gradient, bWins));
  v128.store(dx + c, v128.and(gradient, cWins));
  v128.store(dx + d, v128.and(gradient, dWins));
}

/** routeFourChannels for a single channel. */
function routeOneChannel(x: usize, dx: usize, dyAt: usize, a: usize, b: usize, c: usize, d: usize): void {
  const valueA = load<f32>(x + a);
  const valueB = load<f32>(x + b);
  const valueC = load<f32>(x + c);
  let max: f32 = -Infinity;
  let winner = -1;
  if (valueA > max) {
    max = valueA;
    winner = 0;
  }
  if (valueB > max) {
    max = valueB;
    winner = 1;
  }
  if (valueC > max) {
    max = valueC;
    winner = 2;
  }
  if (load<f32>(x + d) > max) winner = 3;
  const gradient = load<f32>(dyAt);
  store<f32>(dx + a, winner === 0 ? gradient : 0);
  store<f32>(dx + b, winner === 1 ? gradient : 0);
  store<f32>(dx + c, winner === 2 ? gradient : 0);
  store<f32>(dx + d, winner === 3 ? gradient : 0);
}
