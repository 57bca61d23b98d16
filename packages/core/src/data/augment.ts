import { CallosumError, ErrorCodes } from '../errors.js';
import { mix32 } from './random.js';
import type { SampleValues } from './samples.js';

/**
 * Random translation, the classic MNIST augmentation: each training image moves by up to `maxShift`
 * pixels in each direction, the uncovered border filled with 0 (background). The offsets depend only
 * on (seed, epoch, sample index), never on which worker or shard the sample lands in, so augmented
 * training stays reproducible and identical at any worker count.
 */
export function shiftImages<T extends SampleValues>(
  images: T,
  indices: ArrayLike<number>,
  rows: number,
  cols: number,
  maxShift: number,
  seed: number,
  epoch: number,
  channels = 1,
): T {
  if (!Number.isInteger(maxShift) || maxShift < 0 || maxShift >= Math.min(rows, cols)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `maxShift must be an integer in [0, ${Math.min(rows, cols)}), got ${maxShift}`,
    );
  }
  if (maxShift === 0) return images;
  const size = rows * cols * channels;
  const rowLength = cols * channels;
  const shifted = new (images.constructor as new (length: number) => T)(images.length);
  const span = 2 * maxShift + 1;
  const epochKey = mix32(mix32(seed >>> 0) ^ epoch);
  for (let n = 0; n < indices.length; n++) {
    const hash = mix32(epochKey ^ mix32((indices[n] as number) >>> 0));
    const dy = (hash % span) - maxShift;
    const dx = (Math.floor(hash / span) % span) - maxShift;
    const base = n * size;
    for (let y = Math.max(0, dy); y < Math.min(rows, rows + dy); y++) {
      const from = base + (y - dy) * rowLength;
      const to = base + y * rowLength;
      const first = Math.max(0, dx) * channels;
      const end = Math.min(cols, cols + dx) * channels;
      shifted.set(images.subarray(from + first - dx * channels, from + end - dx * channels), to + first);
    }
  }
  return shifted;
}
