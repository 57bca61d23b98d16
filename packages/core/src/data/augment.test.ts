import { describe, expect, it } from 'vitest';
import { shiftImages } from './augment.js';

const ROWS = 5;
const COLS = 6;

/** Images whose pixel value encodes its own (row, col), offset so that 0 means "filled border". */
function codedImages(count: number): Uint8Array {
  const images = new Uint8Array(count * ROWS * COLS);
  for (let n = 0; n < count; n++) {
    for (let i = 0; i < ROWS * COLS; i++) images[n * ROWS * COLS + i] = i + 1;
  }
  return images;
}

/** The (dy, dx) an image was moved by, read back from the coded pixel values. */
function offsetOf(image: Uint8Array): [number, number] {
  for (let y = 0; y < ROWS; y++) {
    for (let x = 0; x < COLS; x++) {
      const value = image[y * COLS + x] as number;
      if (value !== 0) {
        const source = value - 1;
        return [y - Math.floor(source / COLS), x - (source % COLS)];
      }
    }
  }
  throw new Error('image is empty');
}

describe('shiftImages', () => {
  it('moves each image by at most maxShift, filling the uncovered border with 0', () => {
    const indices = Array.from({ length: 200 }, (_, i) => i);
    const shifted = shiftImages(codedImages(200), indices, ROWS, COLS, 2, 9, 0);
    const offsets = indices.map((n) => offsetOf(shifted.subarray(n * ROWS * COLS, (n + 1) * ROWS * COLS)));
    for (const [dy, dx] of offsets) {
      expect(Math.abs(dy)).toBeLessThanOrEqual(2);
      expect(Math.abs(dx)).toBeLessThanOrEqual(2);
    }
    // All 25 offsets occur: the shift is random, not stuck.
    expect(new Set(offsets.map(([dy, dx]) => `${dy},${dx}`)).size).toBe(25);
    // A moved image keeps every pixel that stays inside, at its moved place, and zeros elsewhere.
    const first = shifted.subarray(0, ROWS * COLS);
    const [dy, dx] = offsets[0] as [number, number];
    for (let y = 0; y < ROWS; y++) {
      for (let x = 0; x < COLS; x++) {
        const inside = y - dy >= 0 && y - dy < ROWS && x - dx >= 0 && x - dx < COLS;
        expect(first[y * COLS + x]).toBe(inside ? (y - dy) * COLS + (x - dx) + 1 : 0);
      }
    }
  });

  it('depends only on (seed, epoch, sample index): the same in any grouping, different across epochs', () => {
    const all = shiftImages(codedImages(10), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], ROWS, COLS, 2, 4, 3);
    const part = shiftImages(codedImages(3), [7, 8, 9], ROWS, COLS, 2, 4, 3);
    expect(part).toEqual(all.subarray(7 * ROWS * COLS));
    const nextEpoch = shiftImages(codedImages(10), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], ROWS, COLS, 2, 4, 4);
    expect(nextEpoch).not.toEqual(all);
  });

  it('leaves images alone with maxShift 0 and rejects shifts as large as the image', () => {
    const images = codedImages(2);
    expect(shiftImages(images, [0, 1], ROWS, COLS, 0, 1, 0)).toBe(images);
    expect(() => shiftImages(images, [0, 1], ROWS, COLS, 5, 1, 0)).toThrow(
      /maxShift must be an integer in \[0, 5\)/,
    );
  });
});
