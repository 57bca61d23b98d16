import { CallosumError, ErrorCodes } from '../errors.js';
import { mix32 } from './random.js';

/**
 * Random translation, the classic MNIST augmentation: each training image moves by up to `maxShift`
 * pixels in each direction, the uncovered border filled with 0 (background). The offsets depend only
 * on (seed, epoch, sample index), never on which worker or shard the sample lands in, so augmented
 * training stays reproducible and identical at any worker count.
 */
export function shiftImages(
  images: Uint8Array,
  indices: ArrayLike<number>,
  rows: number,
  cols: number,
  maxShift: number,
  seed: number,
  epoch: number,
): Uint8Array {
  if (!Number.isInteger(maxShift) || maxShift < 0 || maxShift >= Math.min(rows, cols)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `maxShift must be an integer in [0, ${Math.min(rows, cols)}), got ${maxShift}`,
    );
  }
  if (maxShift === 0) return images;
  const size = rows * cols;
  const shifted = new Uint8Array(images.length);
  const span = 2 * maxShift + 1;
  const epochKey = mix32(mix32(seed >>> 0) ^ epoch);
  for (let n = 0; n < indices.length; n++) {
    const hash = mix32(epochKey ^ mix32((indices[n] as number) >>> 0));
    const dy = (hash % span) - maxShift;
    const dx = (Math.floor(hash / span) % span) - maxShift;
    const base = n * size;
    for (let y = Math.max(0, dy); y < Math.min(rows, rows + dy); y++) {
      const from = base + (y - dy) * cols;
      const to = base + y * cols;
      for (let x = Math.max(0, dx); x < Math.min(cols, cols + dx); x++) {
        shifted[to + x] = images[from + x - dx] as number;
      }
    }
  }
  return shifted;
}
