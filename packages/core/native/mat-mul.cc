#include "mat-mul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "target-clones.h"

namespace callosum {
namespace {

// A register tile of kTileRows × kTileColumns outputs: 12 accumulators of 16 floats, which AVX-512
// holds in registers and AVX2 and SSE split into 2 and 4.
constexpr int64_t kTileRows = 6;
constexpr int64_t kTileColumns = 32;
// Blocks of the inner dimension and of the rows, so that a packed right panel (kInnerBlock × 32 floats,
// 32 KiB) stays in L1 and a packed left block (kRowBlock × kInnerBlock, 192 KiB) in L2.
constexpr int64_t kInnerBlock = 256;
constexpr int64_t kRowBlock = 192;
// Columns packed at once (128 panels, 4 MiB at most): bounds the packing buffer for any width.
constexpr int64_t kColumnBlock = 4096;

typedef float Vector16 __attribute__((vector_size(64)));

/** One output's value after a ReLU, as relu(value) in scalar code. */
inline float clamp(float value, Relu relu) {
  if (relu == Relu::nanToZero) return value > 0.0f ? value : 0.0f;
  if (relu == Relu::keepNaN) return value <= 0.0f ? 0.0f : value;
  return value;
}

inline Vector16 load16(const float* from) {
  Vector16 vector;
  std::memcpy(&vector, from, sizeof vector);
  return vector;
}

inline void store16(float* to, Vector16 vector) { std::memcpy(to, &vector, sizeof vector); }

int64_t roundUp(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Packing buffers, kept per thread (a worker's compute threads each call matMul) and grown as needed.
thread_local std::vector<float> packedLeft;
thread_local std::vector<float> packedRight;

/**
 * A tile of kTileRows × kTileColumns outputs: out[r][c] = start[r][c] + Σ_k left[k][r] · right[k][c] over
 * `depth` values of k, in order, from packed panels (left: depth × kTileRows, right: depth × kTileColumns).
 * Row r of `start` is at start + r · startRowStride (0 for a bias shared by every row; nullptr for +0),
 * row r of `out` at out + r · outRowStride, clamped by `relu`.
 */
CALLOSUM_TARGET_CLONES
void multiplyTile(const float* left, const float* right, int64_t depth, const float* start,
                  int64_t startRowStride, float* out, int64_t outRowStride, Relu relu) {
  Vector16 sums[kTileRows][2];
  for (int64_t r = 0; r < kTileRows; ++r) {
    if (start == nullptr) {
      sums[r][0] = Vector16{};
      sums[r][1] = Vector16{};
    } else {
      sums[r][0] = load16(start + r * startRowStride);
      sums[r][1] = load16(start + r * startRowStride + 16);
    }
  }
  for (int64_t k = 0; k < depth; ++k) {
    const Vector16 low = load16(right + k * kTileColumns);
    const Vector16 high = load16(right + k * kTileColumns + 16);
    const float* column = left + k * kTileRows;
    for (int64_t r = 0; r < kTileRows; ++r) {
      sums[r][0] += column[r] * low;
      sums[r][1] += column[r] * high;
    }
  }
  for (int64_t r = 0; r < kTileRows; ++r) {
    for (int half = 0; half < 2; ++half) {
      Vector16 sum = sums[r][half];
      if (relu == Relu::nanToZero) sum = sum > Vector16{} ? sum : Vector16{};
      if (relu == Relu::keepNaN) sum = sum <= Vector16{} ? Vector16{} : sum;
      store16(out + r * outRowStride + half * 16, sum);
    }
  }
}

/**
 * Copies right[k0 .. k0+depth) × columns [c0, c0 + columns) into panels of kTileColumns, zero beyond the
 * last column.
 */
void packRight(const StridedMatrix& right, int64_t k0, int64_t depth, int64_t c0, int64_t columns, float* to) {
  for (int64_t panel = 0; panel < columns; panel += kTileColumns) {
    const int64_t width = std::min(kTileColumns, columns - panel);
    for (int64_t k = 0; k < depth; ++k) {
      const float* row = right.base + (k0 + k) * right.rowStride + (c0 + panel) * right.columnStride;
      float* target = to + (panel / kTileColumns) * depth * kTileColumns + k * kTileColumns;
      int64_t c = 0;
      for (; c < width; ++c) target[c] = row[c * right.columnStride];
      for (; c < kTileColumns; ++c) target[c] = 0.0f;
    }
  }
}

/** Copies left[rows r0 .. r0+height) × [k0 .. k0+depth) into panels of kTileRows, zero beyond the last row. */
void packLeft(const StridedMatrix& left, int64_t r0, int64_t height, int64_t k0, int64_t depth, float* to) {
  for (int64_t panel = 0; panel < height; panel += kTileRows) {
    float* target = to + (panel / kTileRows) * depth * kTileRows;
    const int64_t panelRows = std::min(kTileRows, height - panel);
    for (int64_t k = 0; k < depth; ++k) {
      const float* column = left.base + (r0 + panel) * left.rowStride + (k0 + k) * left.columnStride;
      int64_t r = 0;
      for (; r < panelRows; ++r) target[k * kTileRows + r] = column[r * left.rowStride];
      for (; r < kTileRows; ++r) target[k * kTileRows + r] = 0.0f;
    }
  }
}

/**
 * Copies taps [first, end) of the patch-matrix rows of kTileRows neighbouring output pixels of one image
 * row, starting at (image, outY, outX), to the panel `column` (inner value k of row r at
 * column[(k - k0) · kTileRows + r]): one pass per tap and channel over the six pixels, which read
 * neighbouring input (contiguous for stride 1 and one channel).
 */
void packPixelRun(const ConvolutionPatches& x, const float* image, int64_t outY, int64_t outX, int64_t k0,
                  int64_t k1, float* column) {
  for (int64_t filterY = 0; filterY < x.filterHeight; ++filterY) {
    const int64_t inY = outY * x.strideHeight - x.padTop + filterY * x.dilationHeight;
    const bool rowInside = inY >= 0 && inY < x.inHeight;
    const float* inputRow = image + inY * x.inWidth * x.inChannels;
    for (int64_t filterX = 0; filterX < x.filterWidth; ++filterX) {
      const int64_t tap = (filterY * x.filterWidth + filterX) * x.inChannels;
      const int64_t first = std::max(tap, k0);
      const int64_t end = std::min(tap + x.inChannels, k1);
      const int64_t inX = outX * x.strideWidth - x.padLeft + filterX * x.dilationWidth;
      for (int64_t k = first; k < end; ++k) {
        float* dst = column + (k - k0) * kTileRows;
        const int64_t channel = k - tap;
        for (int64_t r = 0; r < kTileRows; ++r) {
          const int64_t at = inX + r * x.strideWidth;
          dst[r] = rowInside && at >= 0 && at < x.inWidth ? inputRow[at * x.inChannels + channel] : 0.0f;
        }
      }
    }
  }
}

/** Copies one patch-matrix row's inner values [k0, k1) to column[(k - k0) · kTileRows]. */
void packPixel(const ConvolutionPatches& x, const float* image, int64_t outY, int64_t outX, int64_t k0,
               int64_t k1, float* column) {
  for (int64_t filterY = 0; filterY < x.filterHeight; ++filterY) {
    const int64_t inY = outY * x.strideHeight - x.padTop + filterY * x.dilationHeight;
    for (int64_t filterX = 0; filterX < x.filterWidth; ++filterX) {
      const int64_t tap = (filterY * x.filterWidth + filterX) * x.inChannels;
      const int64_t first = std::max(tap, k0);
      const int64_t end = std::min(tap + x.inChannels, k1);
      if (first >= end) continue;
      const int64_t inX = outX * x.strideWidth - x.padLeft + filterX * x.dilationWidth;
      float* dst = column + (first - k0) * kTileRows;
      if (inY >= 0 && inY < x.inHeight && inX >= 0 && inX < x.inWidth) {
        const float* src = image + (inY * x.inWidth + inX) * x.inChannels + (first - tap);
        for (int64_t i = 0; i < end - first; ++i) dst[i * kTileRows] = src[i];
      } else {
        for (int64_t i = 0; i < end - first; ++i) dst[i * kTileRows] = 0.0f;
      }
    }
  }
}

/** The same for the rows and inner values of a convolution's patch matrix, gathered from the input. */
void packLeft(const ConvolutionPatches& x, int64_t r0, int64_t height, int64_t k0, int64_t depth, float* to) {
  const int64_t pixels = x.outHeight * x.outWidth;
  const int64_t imageSize = x.inHeight * x.inWidth * x.inChannels;
  for (int64_t panel = 0; panel < height; panel += kTileRows) {
    float* target = to + (panel / kTileRows) * depth * kTileRows;
    const int64_t row = r0 + panel;
    const int64_t outY = row % pixels / x.outWidth;
    const int64_t outX = row % x.outWidth;
    if (panel + kTileRows <= height && outX + kTileRows <= x.outWidth) {
      packPixelRun(x, x.input + row / pixels * imageSize, outY, outX, k0, k0 + depth, target);
      continue;
    }
    for (int64_t r = 0; r < kTileRows; ++r) {
      float* column = target + r;
      if (panel + r >= height) {
        for (int64_t k = 0; k < depth; ++k) column[k * kTileRows] = 0.0f;
        continue;
      }
      const int64_t pixel = row + r;
      packPixel(x, x.input + pixel / pixels * imageSize, pixel % pixels / x.outWidth, pixel % x.outWidth, k0,
                k0 + depth, column);
    }
  }
}

/** The patch matrix transposed: rows are filter taps, inner values output pixels. */
struct TransposedPatches {
  ConvolutionPatches patches;
};

/**
 * Copies taps [r0, r0 + height) × pixels [k0, k0 + depth) of the transposed patch matrix into panels of
 * kTileRows taps. A pixel whose filter window lies inside the input reads each tap at a fixed offset from
 * its window's corner; one at the border checks each tap.
 */
void packLeft(const TransposedPatches& t, int64_t r0, int64_t height, int64_t k0, int64_t depth, float* to) {
  const ConvolutionPatches& x = t.patches;
  const int64_t pixels = x.outHeight * x.outWidth;
  const int64_t imageSize = x.inHeight * x.inWidth * x.inChannels;
  for (int64_t panel = 0; panel < height; panel += kTileRows) {
    float* target = to + (panel / kTileRows) * depth * kTileRows;
    const int64_t panelTaps = std::min(kTileRows, height - panel);
    // Each tap's place in the filter window (dilated) and its offset from the window's corner.
    int64_t tapY[kTileRows] = {}, tapX[kTileRows] = {}, channel[kTileRows] = {}, offset[kTileRows] = {};
    for (int64_t r = 0; r < panelTaps; ++r) {
      const int64_t tap = r0 + panel + r;
      tapY[r] = tap / (x.filterWidth * x.inChannels) * x.dilationHeight;
      tapX[r] = tap / x.inChannels % x.filterWidth * x.dilationWidth;
      channel[r] = tap % x.inChannels;
      offset[r] = (tapY[r] * x.inWidth + tapX[r]) * x.inChannels + channel[r];
    }
    const int64_t windowHeight = (x.filterHeight - 1) * x.dilationHeight + 1;
    const int64_t windowWidth = (x.filterWidth - 1) * x.dilationWidth + 1;
    for (int64_t k = 0; k < depth; ++k) {
      const int64_t pixel = k0 + k;
      const int64_t outY = pixel % pixels / x.outWidth;
      const int64_t outX = pixel % x.outWidth;
      const int64_t top = outY * x.strideHeight - x.padTop;
      const int64_t left = outX * x.strideWidth - x.padLeft;
      const float* image = x.input + pixel / pixels * imageSize;
      float* column = target + k * kTileRows;
      if (top >= 0 && left >= 0 && top + windowHeight <= x.inHeight && left + windowWidth <= x.inWidth) {
        const float* corner = image + (top * x.inWidth + left) * x.inChannels;
        for (int64_t r = 0; r < kTileRows; ++r) column[r] = r < panelTaps ? corner[offset[r]] : 0.0f;
        continue;
      }
      for (int64_t r = 0; r < kTileRows; ++r) {
        const int64_t inY = top + tapY[r];
        const int64_t inX = left + tapX[r];
        const bool inside = r < panelTaps && inY >= 0 && inY < x.inHeight && inX >= 0 && inX < x.inWidth;
        column[r] = inside ? image[(inY * x.inWidth + inX) * x.inChannels + channel[r]] : 0.0f;
      }
    }
  }
}

/** out = relu?(bias + left · right), left being a StridedMatrix or ConvolutionPatches. */
template <typename Left>
void multiply(const Left& left, const StridedMatrix& right, float* result, const float* bias, int64_t rows,
              int64_t columns, int64_t inner, Relu reluAtEnd) {
  float tile[kTileRows * kTileColumns];

  if (inner == 0) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < columns; ++c) {
        result[r * columns + c] = clamp(bias != nullptr ? bias[c] : 0.0f, reluAtEnd);
      }
    }
    return;
  }

  for (int64_t k0 = 0; k0 < inner; k0 += kInnerBlock) {
    const int64_t depth = std::min(kInnerBlock, inner - k0);
    const bool first = k0 == 0;
    const Relu relu = k0 + depth == inner ? reluAtEnd : Relu::none;
    // A right operand of exactly one panel's width, stored row by row, is its own packed panel.
    const bool onePanel = columns == kTileColumns && right.columnStride == 1 && right.rowStride == kTileColumns;
    for (int64_t c00 = 0; c00 < columns; c00 += kColumnBlock) {
      const int64_t blockColumns = std::min(kColumnBlock, columns - c00);
      const float* rightBlock = right.base + k0 * kTileColumns;
      if (!onePanel) {
        packedRight.resize(static_cast<size_t>(roundUp(blockColumns, kTileColumns) * depth));
        packRight(right, k0, depth, c00, blockColumns, packedRight.data());
        rightBlock = packedRight.data();
      }

      for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
        const int64_t height = std::min(kRowBlock, rows - r0);
        packedLeft.resize(static_cast<size_t>(roundUp(height, kTileRows) * depth));
        packLeft(left, r0, height, k0, depth, packedLeft.data());

        for (int64_t c0 = c00; c0 < c00 + blockColumns; c0 += kTileColumns) {
          const float* rightPanel = rightBlock + ((c0 - c00) / kTileColumns) * depth * kTileColumns;
          const int64_t width = std::min(kTileColumns, columns - c0);
          for (int64_t panel = 0; panel < height; panel += kTileRows) {
            const int64_t panelRows = std::min(kTileRows, height - panel);
            float* out = result + (r0 + panel) * columns + c0;
            const float* leftPanel = packedLeft.data() + (panel / kTileRows) * depth * kTileRows;
            // The first inner block starts from the bias (or +0), later ones from the partial sums stored
            // in `out`: a float32 stored and loaded is unchanged, so blocking keeps the bits.
            const float* start = first ? (bias != nullptr ? bias + c0 : nullptr) : out;
            const int64_t startRowStride = first ? 0 : columns;
            if (panelRows == kTileRows && width == kTileColumns) {
              multiplyTile(leftPanel, rightPanel, depth, start, startRowStride, out, columns, relu);
              continue;
            }
            // An edge tile goes through a full-size copy, its missing rows and columns zero.
            for (int64_t r = 0; r < kTileRows; ++r) {
              for (int64_t c = 0; c < kTileColumns; ++c) {
                const bool inside = r < panelRows && c < width && start != nullptr;
                tile[r * kTileColumns + c] = inside ? start[r * startRowStride + c] : 0.0f;
              }
            }
            multiplyTile(leftPanel, rightPanel, depth, tile, kTileColumns, tile, kTileColumns, relu);
            for (int64_t r = 0; r < panelRows; ++r) {
              std::memcpy(out + r * columns, tile + r * kTileColumns, static_cast<size_t>(width) * sizeof(float));
            }
          }
        }
      }
    }
  }
}

}  // namespace

void matMul(const MatMulProblem& p) {
  multiply(p.left, p.right, p.out, p.bias, p.rows, p.columns, p.inner, p.relu ? Relu::nanToZero : Relu::none);
}

void convolve(const ConvolutionProblem& p) {
  const int64_t inner = p.patches.filterHeight * p.patches.filterWidth * p.patches.inChannels;
  multiply(p.patches, p.filter, p.out, p.bias, p.rows, p.columns, inner, p.relu ? Relu::keepNaN : Relu::none);
}

void convolveFilterGradient(const FilterGradientProblem& p) {
  const ConvolutionPatches& x = p.patches;
  const int64_t taps = x.filterHeight * x.filterWidth * x.inChannels;
  multiply(TransposedPatches{x}, p.dy, p.dW, nullptr, taps, p.outChannels, p.pixels, Relu::none);
}

const char* matMulInstructionSet() {
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
#endif
  return "baseline";
}

}  // namespace callosum
