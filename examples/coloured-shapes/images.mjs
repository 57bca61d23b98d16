// Generates the coloured-shapes dataset: small RGB images, each with one shape on a noisy background,
// labelled by what the shape is and whether its colour is warm or cool. Deterministic: the images
// depend only on the seed of the set they belong to.
//
// What makes it learnable but not trivial: the shape is small (radius 3.5–7 px) and may be rotated, so a
// disc and a square, or a ring and a disc, differ in a few pixels; every pixel gets Gaussian noise; and
// the hue is drawn from the whole colour circle, so shapes near the warm/cool boundary (yellow-green and
// violet) are ambiguous by construction.

export const IMAGE_SIZE = 24;
export const CHANNELS = 3;
export const SHAPES = ['disc', 'square', 'triangle', 'ring'];
export const COLOURS = ['warm', 'cool'];
/** Class index = shape index × 2 + colour index: disc/warm 0, disc/cool 1, square/warm 2, … ring/cool 7. */
export const CLASS_NAMES = SHAPES.flatMap((shape) => COLOURS.map((colour) => `${shape}/${colour}`));
export const CLASS_COUNT = CLASS_NAMES.length;

const NOISE = 0.12;
const SMALLEST_RADIUS = 3.5;
const LARGEST_RADIUS = 7;

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
export function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A generator of standard normal numbers from a uniform one (Box–Muller, both values of each pair used). */
function gaussians(random) {
  let spare;
  return () => {
    if (spare !== undefined) {
      const value = spare;
      spare = undefined;
      return value;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - random()));
    const angle = 2 * Math.PI * random();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

/** HSV (hue in degrees) to RGB in [0, 1]. */
function hsvToRgb(hue, saturation, value) {
  const channel = (n) => {
    const k = (n + hue / 60) % 6;
    return value - value * saturation * Math.max(0, Math.min(k, 4 - k, 1));
  };
  return [channel(5), channel(3), channel(1)];
}

/** Warm: hues within 90° of red (magenta through red and orange to yellow); cool: the rest. */
function isWarm(hue) {
  return hue < 90 || hue >= 270;
}

/** Whether a point (u, v), relative to the shape's centre and rotated into its frame, is inside it. */
function inside(shape, u, v, radius) {
  switch (shape) {
    case 'disc':
      return u * u + v * v <= radius * radius;
    case 'ring': {
      const squared = u * u + v * v;
      return squared <= radius * radius && squared >= (0.55 * radius) ** 2;
    }
    case 'square':
      return Math.abs(u) <= 0.85 * radius && Math.abs(v) <= 0.85 * radius;
    case 'triangle':
      // Equilateral, circumradius `radius`: inside all three edges, each at distance radius / 2.
      for (let edge = 0; edge < 3; edge++) {
        const angle = Math.PI / 2 + (edge * 2 * Math.PI) / 3;
        if (u * Math.cos(angle) + v * Math.sin(angle) > radius / 2) return false;
      }
      return true;
    default:
      throw new Error(`unknown shape ${shape}`);
  }
}

/** Draws one image into `pixels` at `offset` (height × width × channels) and returns its class. */
function drawImage(random, gaussian, pixels, offset) {
  const shapeIndex = Math.floor(random() * SHAPES.length);
  const shape = SHAPES[shapeIndex];
  const hue = random() * 360;
  const colour = hsvToRgb(hue, 0.4 + 0.6 * random(), 0.55 + 0.45 * random());
  const background = [0, 1, 2].map(() => 0.3 * random());
  const radius = SMALLEST_RADIUS + (LARGEST_RADIUS - SMALLEST_RADIUS) * random();
  const centreX = radius + (IMAGE_SIZE - 2 * radius) * random();
  const centreY = radius + (IMAGE_SIZE - 2 * radius) * random();
  const rotation = random() * 2 * Math.PI;
  const cos = Math.cos(rotation);
  const sin = Math.sin(rotation);
  for (let y = 0; y < IMAGE_SIZE; y++) {
    for (let x = 0; x < IMAGE_SIZE; x++) {
      const dx = x + 0.5 - centreX;
      const dy = y + 0.5 - centreY;
      const fill = inside(shape, dx * cos + dy * sin, -dx * sin + dy * cos, radius) ? colour : background;
      const base = offset + (y * IMAGE_SIZE + x) * CHANNELS;
      for (let c = 0; c < CHANNELS; c++) {
        pixels[base + c] = Math.min(1, Math.max(0, fill[c] + NOISE * gaussian()));
      }
    }
  }
  return shapeIndex * COLOURS.length + (isWarm(hue) ? 0 : 1);
}

/** `count` images as float32 [count, 24, 24, 3] in [0, 1] and their classes as int32 [count]. */
export function generateImages(count, seed) {
  const random = mulberry32(seed);
  const imageValues = IMAGE_SIZE * IMAGE_SIZE * CHANNELS;
  const pixels = new Float32Array(count * imageValues);
  const labels = new Int32Array(count);
  const gaussian = gaussians(random);
  for (let i = 0; i < count; i++) labels[i] = drawImage(random, gaussian, pixels, i * imageValues);
  return {
    xs: { values: pixels, shape: [count, IMAGE_SIZE, IMAGE_SIZE, CHANNELS] },
    ys: { values: labels, shape: [count] },
  };
}
