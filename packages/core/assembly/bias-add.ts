/**
 * out[r, c] = a[r, c] + b[c] for a row-major float32 matrix a of `rows` × `columns` and a row b of
 * `columns`: a bias added to every position of a layer's output. One float32 addition per element, so
 * the bits are those of any other correct kernel. Four columns per f32x4, the last columns % 4 singly.
 */
export function biasAdd(a: usize, b: usize, out: usize, rows: i32, columns: i32): void {
  const rowBytes = (<usize>columns) << 2;
  const vectorEnd = rowBytes & ~(<usize>15);
  let at: usize = 0;
  for (let row = 0; row < rows; row++, at += rowBytes) {
    let column: usize = 0;
    for (; column < vectorEnd; column += 16) {
      v128.store(out + at + column, f32x4.add(v128.load(a + at + column), v128.load(b + column)));
    }
    for (; column < rowBytes; column += 4) {
      store<f32>(out + at + column, load<f32>(a + at + column) + load<f32>(b + column));
    }
  }
}
