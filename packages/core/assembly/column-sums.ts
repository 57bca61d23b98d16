/**
 * Column totals of a row-major float32 matrix in float64, rounded to float32 at the end: the bias
 * gradient of a layer, dy summed over every axis but the channels. The float64 operations and their
 * order are those of sum.ts's JavaScript loop, so the bits are too: each total adds
 * (row r + row r+1) + (row r+2 + row r+3) for every whole group of four rows from the top, then the
 * remaining rows one at a time. Two columns per f64x2.
 *
 * `scratch` is 8 bytes per column for the float64 totals.
 */
export function columnSums(values: usize, rows: i32, columns: i32, totals: usize, scratch: usize): void {
  const rowBytes = (<usize>columns) << 2;
  const pairEnd = (<usize>(columns & ~1)) << 2;
  memory.fill(scratch, 0, (<usize>columns) << 3);
  let row = 0;
  let at = values;
  for (; row + 3 < rows; row += 4, at += rowBytes << 2) {
    for (let column: usize = 0; column < pairEnd; column += 8) {
      const first = widenPair(at + column);
      const second = widenPair(at + rowBytes + column);
      const third = widenPair(at + rowBytes * 2 + column);
      const fourth = widenPair(at + rowBytes * 3 + column);
      const quad = f64x2.add(f64x2.add(first, second), f64x2.add(third, fourth));
      const sum = scratch + (column << 1);
      v128.store(sum, f64x2.add(v128.load(sum), quad));
    }
    if (pairEnd < rowBytes) {
      const first = <f64>load<f32>(at + pairEnd);
      const second = <f64>load<f32>(at + rowBytes + pairEnd);
      const third = <f64>load<f32>(at + rowBytes * 2 + pairEnd);
      const fourth = <f64>load<f32>(at + rowBytes * 3 + pairEnd);
      const sum = scratch + (pairEnd << 1);
      store<f64>(sum, load<f64>(sum) + (first + second + (third + fourth)));
    }
  }
  for (; row < rows; row++, at += rowBytes) {
    for (let column: usize = 0; column < rowBytes; column += 4) {
      const sum = scratch + (column << 1);
      store<f64>(sum, load<f64>(sum) + <f64>load<f32>(at + column));
    }
  }
  for (let column: usize = 0; column < rowBytes; column += 4) {
    store<f32>(totals + column, <f32>load<f64>(scratch + (column << 1)));
  }
}

/** Two float32 at `address`, widened to float64. */
function widenPair(address: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(address));
}
