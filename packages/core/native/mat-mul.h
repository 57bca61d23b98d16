// A float32 matrix product (and a convolution as one) whose every output is the one XNNPACK's GEMM gives on the wasm backend, at
// the speed of the CPU's widest vectors (AVX-512 or AVX2 where present).
//
// Each output starts from its initial value (a bias, or +0) and adds its products one by one in the
// order of the inner index, every product rounded before it is added: exactly what XNNPACK's f32 GEMM
// microkernels do in wasm, which has no fused multiply-add. Blocking, packing and vector width change
// only which outputs are computed together, never the operations on one output, so the bits match for
// finite inputs. The build must not fuse a multiply and an add into an FMA (-ffp-contract=off).
#pragma once

#include <cstdint>

namespace callosum {

/**
 * The ReLU after a product, as XNNPACK applies it on wasm: its matrix product maps NaN to +0, its
 * convolution keeps NaN (NaN payloads aside, the bits are equal for every input).
 */
enum class Relu { none, nanToZero, keepNaN };

/** A matrix read in place: element (row, column) is at base[row * rowStride + column * columnStride]. */
struct StridedMatrix {
  const float* base;
  int64_t rowStride;
  int64_t columnStride;
};

/**
 * The patch matrix of a 2-D convolution over an NHWC input, read in place: row (b, outY, outX) holds the
 * input under the filter at that output pixel, filter tap by tap (filterY, then filterX, then input
 * channel), with 0 where the filter hangs over the padding, as XNNPACK's indirection buffer points there
 * at zeros. Multiplied by the filter as a [taps × input channels, output channels] matrix it gives the
 * convolution, with XNNPACK's order of products.
 */
struct ConvolutionPatches {
  const float* input;
  int64_t inHeight, inWidth, inChannels;
  int64_t outHeight, outWidth;
  int64_t filterHeight, filterWidth;
  int64_t strideHeight, strideWidth;
  int64_t dilationHeight, dilationWidth;
  int64_t padTop, padLeft;
};

struct MatMulProblem {
  StridedMatrix left;   // rows × inner
  StridedMatrix right;  // inner × columns
  float* out;           // rows × columns, row-major
  const float* bias;    // columns values each output starts from, or nullptr for +0
  int64_t rows;
  int64_t columns;
  int64_t inner;
  bool relu;            // outputs not above 0 (NaN included) become +0, as XNNPACK's product clamps
};

/** out = relu?(bias + left · right). */
void matMul(const MatMulProblem& problem);

/** The same with the patch matrix as the left operand: a convolution (rows = batch · outHeight · outWidth). */
struct ConvolutionProblem {
  ConvolutionPatches patches;
  StridedMatrix filter;  // (filterHeight · filterWidth · inChannels) × outChannels
  float* out;
  const float* bias;
  int64_t rows;
  int64_t columns;
  bool relu;  // outputs at or below 0 become +0; NaN stays NaN, as XNNPACK's convolution clamps
};
void convolve(const ConvolutionProblem& problem);

/**
 * A convolution's filter gradient: dW = patchesᵀ · dy, [taps, outChannels] = [taps, pixels] ·
 * [pixels, outChannels], each element adding its products pixel by pixel (image, row, column) from +0, the
 * padding's zeros included: the order of XNNPACK's product of the transposed patch matrix with dy.
 */
struct FilterGradientProblem {
  ConvolutionPatches patches;  // the forward pass's input and geometry (dilation 1)
  StridedMatrix dy;            // pixels × outChannels
  float* dW;                   // taps × outChannels
  int64_t pixels;              // batch · outHeight · outWidth
  int64_t outChannels;
};
void convolveFilterGradient(const FilterGradientProblem& problem);

/** The instruction set matMul runs on in this process: "avx512f", "avx2" or "baseline". */
const char* matMulInstructionSet();

}  // namespace callosum
