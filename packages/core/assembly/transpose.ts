/**
 * Transposes `count` consecutive row-major matrices of `rows` × `columns` 4-byte elements from `source`
 * into `target` (each becomes columns × rows). A copy, so the bits are those of the input.
 *
 * Tiles of 4 × 4 are turned with lane shuffles, sixteen source rows at a time, so that each target row
 * receives 64 contiguous bytes (a cache line) before the next column tile: a plain element loop
 * writes with a stride of a whole target row and misses the cache on nearly every element.
 */
export function transposeMatrices(source: usize, target: usize, count: i32, rows: i32, columns: i32): void {
  const matrixBytes = (<usize>(rows * columns)) << 2;
  for (let matrix = 0; matrix < count; matrix++) {
    transposeOne(source + matrixBytes * matrix, target + matrixBytes * matrix, rows, columns);
  }
}

/** Source rows per band: four tiles of four. */
const BAND_ROWS: i32 = 16;

function transposeOne(source: usize, target: usize, rows: i32, columns: i32): void {
  const sourceRow = (<usize>columns) << 2;
  const targetRow = (<usize>rows) << 2;
  const tiledRows = rows & ~3;
  const tiledColumns = columns & ~3;
  for (let band = 0; band < tiledRows; band += BAND_ROWS) {
    const bandEnd = min(band + BAND_ROWS, tiledRows);
    for (let column = 0; column < tiledColumns; column += 4) {
      for (let row = band; row < bandEnd; row += 4) {
        const from = source + <usize>row * sourceRow + ((<usize>column) << 2);
        const to = target + <usize>column * targetRow + ((<usize>row) << 2);
        transposeTile(from, sourceRow, to, targetRow);
      }
    }
  }
  // The columns and rows beyond the last whole tile, one element at a time.
  for (let row = 0; row < rows; row++) {
    const firstColumn = row < tiledRows ? tiledColumns : 0;
    for (let column = firstColumn; column < columns; column++) {
      store<u32>(
        target + <usize>column * targetRow + ((<usize>row) << 2),
        load<u32>(source + <usize>row * sourceRow + ((<usize>column) << 2)),
      );
    }
  }
}

/** One 4 × 4 tile: four rows `fromStride` bytes apart become four rows `toStride` bytes apart. */
function transposeTile(from: usize, fromStride: usize, to: usize, toStride: usize): void {
  const r0 = v128.load(from);
  const r1 = v128.load(from + fromStride);
  const r2 = v128.load(from + fromStride * 2);
  const r3 = v128.load(from + fromStride * 3);
  // Interleave pairs of rows, then pairs of pairs: lane j of row i ends up as lane i of row j.
  const low01 = v128.shuffle<u32>(r0, r1, 0, 4, 1, 5);
  const high01 = v128.shuffle<u32>(r0, r1, 2, 6, 3, 7);
  const low23 = v128.shuffle<u32>(r2, r3, 0, 4, 1, 5);
  const high23 = v128.shuffle<u32>(r2, r3, 2, 6, 3, 7);
  v128.store(to, v128.shuffle<u32>(low01, low23, 0, 1, 4, 5));
  v128.store(to + toStride, v128.shuffle<u32>(low01, low23, 2, 3, 6, 7));
  v128.store(to + toStride * 2, v128.shuffle<u32>(high01, high23, 0, 1, 4, 5));
  v128.store(to + toStride * 3, v128.shuffle<u32>(high01, high23, 2, 3, 6, 7));
}
