/**
 * The filter gradient of an NHWC 2-D convolution computed directly, with no patch matrix:
 *   dW[fh, fw, ic, oc] = Σ over (b, outRow, outCol) of x[b, inRow, inCol, ic] · dy[b, outRow, outCol, oc]
 * where inRow = outRow·strideHeight − padTop + fh and inCol = outCol·strideWidth − padLeft + fw (taps
 * that fall into the padding contribute nothing).
 *
 * Three neighbouring filter columns (fw, fw+1, fw+2) are taken together where they all see some of the
 * image: each dy vector then serves every tap that sees its pixel, in twelve f32x4 accumulators (16
 * output channels). The other taps and output channels go one tap at a time, 32 channels per eight
 * accumulators, then 4 per f32x4, then singly.
 *
 * Order of the float32 additions: each dW element adds its products one by one to what it holds, in
 * pixel order (image by image, row by row, column by column), each product rounded before it is added.
 * That is the order of XNNPACK's GEMM, which computed this gradient from a patch matrix before this
 * kernel (aee39b7), so training keeps the bits it had then. The accumulators start from dW, not zero.
 * (For finite x and dy: the patch matrix also multiplied the padding's zeros, and 0 · Infinity is NaN.)
 */

/** Output channels per three-tap block (4 f32x4 per tap) and per one-tap wide block (8 f32x4). */
const TRIPLE_BLOCK: i32 = 16;
const WIDE_BLOCK: i32 = 32;

// The current call's strides in bytes, set once per call: wasm globals, not memory, so that the helpers'
// signatures stay short.
let xRowStep: usize = 0;
let xColumnStep: usize = 0;
let dyRowStep: usize = 0;
let dyColumnStep: usize = 0;
// The output columns [tapFirstN, tapEndN) that tap N of the current three-tap block sees, set per block.
let tapFirst0: i32 = 0;
let tapFirst1: i32 = 0;
let tapFirst2: i32 = 0;
let tapEnd0: i32 = 0;
let tapEnd1: i32 = 0;
let tapEnd2: i32 = 0;

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
  xRowStep = (<usize>(strideHeight * inWidth * inChannels)) << 2;
  xColumnStep = (<usize>(strideWidth * inChannels)) << 2;
  dyRowStep = (<usize>(outWidth * outChannels)) << 2;
  dyColumnStep = (<usize>outChannels) << 2;
  const inPixel = (<usize>inChannels) << 2;
  const tapBytes = (<usize>(inChannels * outChannels)) << 2;
  for (let b = 0; b < batch; b++) {
    const xImage = x + ((<usize>(b * inHeight * inWidth * inChannels)) << 2);
    const dyImage = dy + ((<usize>(b * outHeight * outWidth * outChannels)) << 2);
    for (let fh = 0; fh < filterHeight; fh++) {
      // The output rows whose input row lies inside the image.
      const firstRow = max(0, ceilDiv(padTop - fh, strideHeight));
      const rows = min(outHeight, ceilDiv(inHeight + padTop - fh, strideHeight)) - firstRow;
      if (rows <= 0) continue;
      const xRows = xImage + <usize>((firstRow * strideHeight - padTop + fh) * inWidth - padLeft) * inPixel;
      const dyRows = dyImage + <usize>firstRow * dyRowStep;
      for (let ic = 0; ic < inChannels; ic++) {
        // x at output column 0 for filter column 0, and dW at filter column 0. That x column may lie in
        // the padding (the unsigned offset then wraps around): only columns inside the image are read.
        const xTaps = xRows + ((<usize>ic) << 2);
        const dWTaps = dW + <usize>(fh * filterWidth * inChannels + ic) * ((<usize>outChannels) << 2);
        let fw = 0;
        for (; fw + 3 <= filterWidth; fw += 3) {
          addThreeColumns(
            xTaps,
            dyRows,
            dWTaps,
            fw,
            rows,
            outWidth,
            outChannels,
            inWidth,
            strideWidth,
            padLeft,
            inPixel,
            tapBytes,
          );
        }
        for (; fw < filterWidth; fw++) {
          const first = firstColumn(fw, strideWidth, padLeft);
          const end = endColumn(fw, outWidth, inWidth, strideWidth, padLeft);
          addTap(
            xTaps + <usize>fw * inPixel,
            dyRows,
            dWTaps + <usize>fw * tapBytes,
            rows,
            first,
            end,
            0,
            outChannels,
          );
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

/** The first output column whose input column, for filter column fw, lies inside the image. */
function firstColumn(fw: i32, strideWidth: i32, padLeft: i32): i32 {
  return max(0, ceilDiv(padLeft - fw, strideWidth));
}

/** One past the last output column whose input column, for filter column fw, lies inside the image. */
function endColumn(fw: i32, outWidth: i32, inWidth: i32, strideWidth: i32, padLeft: i32): i32 {
  return min(outWidth, ceilDiv(inWidth + padLeft - fw, strideWidth));
}

/**
 * Filter columns fw, fw+1, fw+2 (of one filter row and input channel): blocks of 16 channels go through
 * addTripleBlock, over every column each tap sees; the remaining channels go through addTap, tap by tap.
 * `xTaps` and `dWTaps` are at filter column 0.
 */
function addThreeColumns(
  xTaps: usize,
  dy: usize,
  dWTaps: usize,
  fw: i32,
  rows: i32,
  outWidth: i32,
  outChannels: i32,
  inWidth: i32,
  strideWidth: i32,
  padLeft: i32,
  inPixel: usize,
  tapBytes: usize,
): void {
  // A larger filter column sees the image from an earlier output column on, and up to an earlier one:
  // before tapFirst0 only the third tap (from tapFirst2) and the second (from tapFirst1) see a column,
  // from tapEnd2 on only the first (up to tapEnd0) and the second (up to tapEnd1); all three between.
  tapFirst0 = firstColumn(fw, strideWidth, padLeft);
  tapFirst1 = firstColumn(fw + 1, strideWidth, padLeft);
  tapFirst2 = firstColumn(fw + 2, strideWidth, padLeft);
  tapEnd0 = endColumn(fw, outWidth, inWidth, strideWidth, padLeft);
  tapEnd1 = endColumn(fw + 1, outWidth, inWidth, strideWidth, padLeft);
  tapEnd2 = endColumn(fw + 2, outWidth, inWidth, strideWidth, padLeft);
  const blocked = tapFirst0 < tapEnd2 ? outChannels & ~(TRIPLE_BLOCK - 1) : 0;
  const x = xTaps + <usize>fw * inPixel;
  const dW = dWTaps + <usize>fw * tapBytes;
  for (let channel = 0; channel < blocked; channel += TRIPLE_BLOCK) {
    const channelBytes = (<usize>channel) << 2;
    addTripleBlock(x, inPixel, dy + channelBytes, rows, dW + channelBytes, tapBytes);
  }
  addTap(x, dy, dW, rows, tapFirst0, tapEnd0, blocked, outChannels);
  addTap(x + inPixel, dy, dW + tapBytes, rows, tapFirst1, tapEnd1, blocked, outChannels);
  addTap(x + inPixel * 2, dy, dW + tapBytes * 2, rows, tapFirst2, tapEnd2, blocked, outChannels);
}

/**
 * dW[tap, channelFrom .. channelTo) += the products x · dy over `rows` output rows and output columns
 * [first, end), one by one in pixel order, for one tap: `x` is the tap's input at output column 0 of the
 * first row, `dy` the first row.
 */
function addTap(
  x: usize,
  dy: usize,
  dW: usize,
  rows: i32,
  first: i32,
  end: i32,
  channelFrom: i32,
  channelTo: i32,
): void {
  const columns = end - first;
  if (columns <= 0 || channelFrom >= channelTo) return;
  // Locals, not the module's globals, in the loops: V8 would load a global from memory each time.
  const xStep = xColumnStep;
  const dyStep = dyColumnStep;
  const xRows = xRowStep;
  const dyRows = dyRowStep;
  const xFirst = x + <usize>first * xStep;
  const dyFirst = dy + <usize>first * dyStep;
  let channel = channelFrom;
  for (; channel + WIDE_BLOCK <= channelTo; channel += WIDE_BLOCK) {
    const offset = (<usize>channel) << 2;
    addWideBlock(xFirst, dyFirst + offset, rows, columns, dW + offset);
  }
  for (; channel + 4 <= channelTo; channel += 4) {
    const offset = (<usize>channel) << 2;
    let sum = v128.load(dW + offset);
    for (let row = 0; row < rows; row++) {
      let xAt = xFirst + <usize>row * xRows;
      let dyAt = dyFirst + <usize>row * dyRows + offset;
      for (let column = 0; column < columns; column++, xAt += xStep, dyAt += dyStep) {
        sum = f32x4.add(sum, f32x4.mul(v128.load32_splat(xAt), v128.load(dyAt)));
      }
    }
    v128.store(dW + offset, sum);
  }
  for (; channel < channelTo; channel++) {
    const offset = (<usize>channel) << 2;
    let sum = load<f32>(dW + offset);
    for (let row = 0; row < rows; row++) {
      let xAt = xFirst + <usize>row * xRows;
      let dyAt = dyFirst + <usize>row * dyRows + offset;
      for (let column = 0; column < columns; column++, xAt += xStep, dyAt += dyStep) {
        sum += load<f32>(xAt) * load<f32>(dyAt);
      }
    }
    store<f32>(dW + offset, sum);
  }
}

/** addTap for 32 consecutive channels, in eight f32x4 accumulators that stay in registers. */
function addWideBlock(x: usize, dy: usize, rows: i32, columns: i32, dW: usize): void {
  // Locals, not the module's globals, in the loops: V8 would load a global from memory each time.
  const xStep = xColumnStep;
  const dyStep = dyColumnStep;
  const xRows = xRowStep;
  const dyRows = dyRowStep;
  let s0 = v128.load(dW);
  let s1 = v128.load(dW, 16);
  let s2 = v128.load(dW, 32);
  let s3 = v128.load(dW, 48);
  let s4 = v128.load(dW, 64);
  let s5 = v128.load(dW, 80);
  let s6 = v128.load(dW, 96);
  let s7 = v128.load(dW, 112);
  for (let row = 0; row < rows; row++, x += xRows, dy += dyRows) {
    let xAt = x;
    let dyAt = dy;
    for (let column = 0; column < columns; column++, xAt += xStep, dyAt += dyStep) {
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
  }
  v128.store(dW, s0);
  v128.store(dW, s1, 16);
  v128.store(dW, s2, 32);
  v128.store(dW, s3, 48);
  v128.store(dW, s4, 64);
  v128.store(dW, s5, 80);
  v128.store(dW, s6, 96);
  v128.store(dW, s7, 112);
}

/**
 * Three taps `tapStep` bytes apart in x (neighbouring input columns) and `dWStep` apart in dW, for 16
 * channels, over the columns each sees (tapFirstN, tapEndN): each of the four dy vectors of a pixel is
 * loaded once and used by every tap that sees the pixel. `x` and `dy` are at output column 0.
 */
function addTripleBlock(x: usize, tapStep: usize, dy: usize, rows: i32, dW: usize, dWStep: usize): void {
  // Locals, not the module's globals, in the loops: V8 would load a global from memory each time.
  const xStep = xColumnStep;
  const dyStep = dyColumnStep;
  const xRows = xRowStep;
  const dyRows = dyRowStep;
  const first1 = tapFirst1;
  const first2 = tapFirst2;
  const sharedFirst = tapFirst0;
  const sharedEnd = tapEnd2;
  const end0 = tapEnd0;
  const end1 = tapEnd1;
  const dW1 = dW + dWStep;
  const dW2 = dW1 + dWStep;
  let a0 = v128.load(dW);
  let a1 = v128.load(dW, 16);
  let a2 = v128.load(dW, 32);
  let a3 = v128.load(dW, 48);
  let b0 = v128.load(dW1);
  let b1 = v128.load(dW1, 16);
  let b2 = v128.load(dW1, 32);
  let b3 = v128.load(dW1, 48);
  let c0 = v128.load(dW2);
  let c1 = v128.load(dW2, 16);
  let c2 = v128.load(dW2, 32);
  let c3 = v128.load(dW2, 48);
  for (let row = 0; row < rows; row++, x += xRows, dy += dyRows) {
    // Columns before the shared ones: seen by the third tap, and from first1 on by the second.
    let column = first2;
    let xAt = x + <usize>column * xStep;
    let dyAt = dy + <usize>column * dyStep;
    for (; column < sharedFirst; column++, xAt += xStep, dyAt += dyStep) {
      const g0 = v128.load(dyAt);
      const g1 = v128.load(dyAt, 16);
      const g2 = v128.load(dyAt, 32);
      const g3 = v128.load(dyAt, 48);
      if (column >= first1) {
        const second = v128.load32_splat(xAt + tapStep);
        b0 = f32x4.add(b0, f32x4.mul(second, g0));
        b1 = f32x4.add(b1, f32x4.mul(second, g1));
        b2 = f32x4.add(b2, f32x4.mul(second, g2));
        b3 = f32x4.add(b3, f32x4.mul(second, g3));
      }
      const third = v128.load32_splat(xAt + tapStep * 2);
      c0 = f32x4.add(c0, f32x4.mul(third, g0));
      c1 = f32x4.add(c1, f32x4.mul(third, g1));
      c2 = f32x4.add(c2, f32x4.mul(third, g2));
      c3 = f32x4.add(c3, f32x4.mul(third, g3));
    }
    for (; column < sharedEnd; column++, xAt += xStep, dyAt += dyStep) {
      const first = v128.load32_splat(xAt);
      const second = v128.load32_splat(xAt + tapStep);
      const third = v128.load32_splat(xAt + tapStep * 2);
      let gradient = v128.load(dyAt);
      a0 = f32x4.add(a0, f32x4.mul(first, gradient));
      b0 = f32x4.add(b0, f32x4.mul(second, gradient));
      c0 = f32x4.add(c0, f32x4.mul(third, gradient));
      gradient = v128.load(dyAt, 16);
      a1 = f32x4.add(a1, f32x4.mul(first, gradient));
      b1 = f32x4.add(b1, f32x4.mul(second, gradient));
      c1 = f32x4.add(c1, f32x4.mul(third, gradient));
      gradient = v128.load(dyAt, 32);
      a2 = f32x4.add(a2, f32x4.mul(first, gradient));
      b2 = f32x4.add(b2, f32x4.mul(second, gradient));
      c2 = f32x4.add(c2, f32x4.mul(third, gradient));
      gradient = v128.load(dyAt, 48);
      a3 = f32x4.add(a3, f32x4.mul(first, gradient));
      b3 = f32x4.add(b3, f32x4.mul(second, gradient));
      c3 = f32x4.add(c3, f32x4.mul(third, gradient));
    }
    // Columns after the shared ones: seen by the first tap, and up to end1 by the second.
    for (; column < end0; column++, xAt += xStep, dyAt += dyStep) {
      const g0 = v128.load(dyAt);
      const g1 = v128.load(dyAt, 16);
      const g2 = v128.load(dyAt, 32);
      const g3 = v128.load(dyAt, 48);
      const first = v128.load32_splat(xAt);
      a0 = f32x4.add(a0, f32x4.mul(first, g0));
      a1 = f32x4.add(a1, f32x4.mul(first, g1));
      a2 = f32x4.add(a2, f32x4.mul(first, g2));
      a3 = f32x4.add(a3, f32x4.mul(first, g3));
      if (column < end1) {
        const second = v128.load32_splat(xAt + tapStep);
        b0 = f32x4.add(b0, f32x4.mul(second, g0));
        b1 = f32x4.add(b1, f32x4.mul(second, g1));
        b2 = f32x4.add(b2, f32x4.mul(second, g2));
        b3 = f32x4.add(b3, f32x4.mul(second, g3));
      }
    }
  }
  storeFour(dW, a0, a1, a2, a3);
  storeFour(dW1, b0, b1, b2, b3);
  storeFour(dW2, c0, c1, c2, c3);
}

/** Stores four f32x4 as the 16 float32 at `at`. */
function storeFour(at: usize, first: v128, second: v128, third: v128, fourth: v128): void {
  v128.store(at, first);
  v128.store(at, second, 16);
  v128.store(at, third, 32);
  v128.store(at, fourth, 48);
}
