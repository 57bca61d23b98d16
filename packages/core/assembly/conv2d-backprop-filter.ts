/**
 * The filter gradient of an NHWC 2-D convolution computed directly, with no patch matrix:
 *   dW[fh, fw, ic, oc] = Σ over (b, outRow, outCol) of x[b, inRow, inCol, ic] · dy[b, outRow, outCol, oc]
 * where inRow = outRow·strideHeight − padTop + fh and inCol = outCol·strideWidth − padLeft + fw (taps
 * that fall into the padding contribute nothing).
 *
 * Order of the float32 additions, fixed for given shapes: for each (b, outRow) in row-major order, the
 * products of one input row and one dy row are summed over outCol in a fresh accumulator, which is then
 * added to dW. The dy row (a few KB) stays in L1 while every filter tap reads it.
 */

/** Output channels per register block: 8 f32x4 accumulators. */
const WIDE_BLOCK: i32 = 32;

export function conv2dBackpropFilter(
  x: usize,
  dy: usize,
  dW: usize,
  batch: i32,
  inHeight: i32,
  inWidth: i32,
  inChannels: i32,
  outHeight: i32,
  outWidth: i32,
  outChannels: i32,
  filterHeight: i32,
  filterWidth: i32,
  strideHeight: i32,
  strideWidth: i32,
  padTop: i32,
  padLeft: i32,
): void {
  memory.fill(dW, 0, (<usize>(filterHeight * filterWidth * inChannels * outChannels)) << 2);
  const xPixelStep = (<usize>(strideWidth * inChannels)) << 2;
  const dyPixelStep = (<usize>outChannels) << 2;
  for (let b = 0; b < batch; b++) {
    for (let outRow = 0; outRow < outHeight; outRow++) {
      const dyRow = dy + ((<usize>((b * outHeight + outRow) * outWidth * outChannels)) << 2);
      for (let fh = 0; fh < filterHeight; fh++) {
        const inRow = outRow * strideHeight - padTop + fh;
        if (inRow < 0 || inRow >= inHeight) continue;
        const xRow = x + ((<usize>((b * inHeight + inRow) * inWidth * inChannels)) << 2);
        for (let fw = 0; fw < filterWidth; fw++) {
          // The output columns whose input column lies inside the image.
          const firstCol = max(0, ceilDiv(padLeft - fw, strideWidth));
          const endCol = min(outWidth, ceilDiv(inWidth + padLeft - fw, strideWidth));
          if (firstCol >= endCol) continue;
          const xFirst = xRow + ((<usize>((firstCol * strideWidth - padLeft + fw) * inChannels)) << 2);
          const dyFirst = dyRow + ((<usize>(firstCol * outChannels)) << 2);
          const tapRow = dW + ((<usize>((fh * filterWidth + fw) * inChannels * outChannels)) << 2);
          for (let ic = 0; ic < inChannels; ic++) {
            addTapRow(
              xFirst + ((<usize>ic) << 2),
              xPixelStep,
              dyFirst,
              dyPixelStep,
              endCol - firstCol,
              tapRow + ((<usize>(ic * outChannels)) << 2),
              outChannels,
            );
          }
        }
      }
    }
  }
}

/** ⌈numerator / denominator⌉ for a positive denominator. */
function ceilDiv(numerator: i32, denominator: i32): i32 {
  const quotient = numerator / denominator;
  return quotient * denominator < numerator ? quotient + 1 : quotient;
}

/**
 * target[oc] += Σ over `pixels` of x · dy[oc], for one filter tap: x is one float32 per pixel,
 * `xStep` bytes apart, and dy is one row of `channels` float32 per pixel, `dyStep` bytes apart.
 */
function addTapRow(
  x: usize,
  xStep: usize,
  dy: usize,
  dyStep: usize,
  pixels: i32,
  target: usize,
  channels: i32,
): void {
  let channel = 0;
  for (; channel + WIDE_BLOCK <= channels; channel += WIDE_BLOCK) {
    addWideBlock(x, xStep, dy + ((<usize>channel) << 2), dyStep, pixels, target + ((<usize>channel) << 2));
  }
  for (; channel + 4 <= channels; channel += 4) {
    const offset = (<usize>channel) << 2;
    let sum = f32x4.splat(0);
    let xAt = x;
    let dyAt = dy + offset;
    for (let pixel = 0; pixel < pixels; pixel++, xAt += xStep, dyAt += dyStep) {
      sum = f32x4.add(sum, f32x4.mul(v128.load32_splat(xAt), v128.load(dyAt)));
    }
    v128.store(target + offset, f32x4.add(v128.load(target + offset), sum));
  }
  for (; channel < channels; channel++) {
    const offset = (<usize>channel) << 2;
    let sum: f32 = 0;
    let xAt = x;
    let dyAt = dy + offset;
    for (let pixel = 0; pixel < pixels; pixel++, xAt += xStep, dyAt += dyStep) {
      sum += load<f32>(xAt) * load<f32>(dyAt);
    }
    store<f32>(target + offset, load<f32>(target + offset) + sum);
  }
}

/** addTapRow for 32 consecutive channels, in eight f32x4 accumulators that stay in registers. */
function addWideBlock(x: usize, xStep: usize, dy: usize, dyStep: usize, pixels: i32, target: usize): void {
  let s0 = f32x4.splat(0);
  let s1 = s0;
  let s2 = s0;
  let s3 = s0;
  let s4 = s0;
  let s5 = s0;
  let s6 = s0;
  let s7 = s0;
  let xAt = x;
  let dyAt = dy;
  for (let pixel = 0; pixel < pixels; pixel++, xAt += xStep, dyAt += dyStep) {
    const value = v128.load32_splat(xAt);
    s0 = f32x4.add(s0, f32x4.mul(value, v128.load(dyAt)));
    s1 = f32x4.add(s1, f32x4.mul(value, v128.load(dyAt, 16)));
    s2 = f32x4.add(s2, f32x4.mul(value, v128.load(dyAt, 32)));
    s3 = f32x4.add(s3, f32x4.mul(value, v128.load(dyAt, 48)));
    s4 = f32x4.add(s4, f32x4.mul(value, v128.load(dyAt, 64)));
    s5 = f32x4.add(s5, f32x4.mul(value, v128.load(dyAt, 80)));
    s6 = f32x4.add(s6, f32x4.mul(value, v128.load(dyAt, 96)));
    s7 = f32x4.add(s7, f32x4.mul(value, v128.load(dyAt, 112)));
  }
  v128.store(target, f32x4.add(v128.load(target), s0));
  v128.store(target, f32x4.add(v128.load(target, 16), s1), 16);
  v128.store(target, f32x4.add(v128.load(target, 32), s2), 32);
  v128.store(target, f32x4.add(v128.load(target, 48), s3), 48);
  v128.store(target, f32x4.add(v128.load(target, 64), s4), 64);
  v128.store(target, f32x4.add(v128.load(target, 80), s5), 80);
  v128.store(target, f32x4.add(v128.load(target, 96), s6), 96);
  v128.store(target, f32x4.add(v128.load(target, 112), s7), 112);
}
