// Node-API binding of core's native kernels. They work on the wasm backend's heap (a WebAssembly
// memory's ArrayBuffer), addressed by byte offsets as the backend's getMemoryOffset gives them, so
// tensors are neither copied in nor out. Every range a call would touch is checked against the heap
// first: a wrong offset from JavaScript is an exception, never a write outside the heap.
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "mat-mul.h"
#include "vectors.h"

namespace {

bool throwError(napi_env env, const std::string& message) {
  napi_throw_error(env, "ERR_CALLOSUM_NATIVE_KERNEL", message.c_str());
  return false;
}

bool readInteger(napi_env env, napi_value value, const char* name, int64_t* result) {
  double number;
  if (napi_get_value_double(env, value, &number) != napi_ok || !std::isfinite(number) ||
      number != std::floor(number) || std::fabs(number) > 9007199254740991.0) {
    return throwError(env, std::string(name) + " must be an integer");
  }
  *result = static_cast<int64_t>(number);
  return true;
}

/**
 * Whether a rows × columns matrix at byteOffset with these element strides lies inside the heap. A
 * stride of 0 is allowed only for a dimension of one (else a huge dimension would pass with a small
 * extent), and the extent is computed with overflow checks.
 */
bool fitsInHeap(int64_t byteOffset, int64_t rows, int64_t columns, int64_t rowStride, int64_t columnStride,
                size_t heapBytes) {
  const int64_t heapElements = static_cast<int64_t>(heapBytes / 4);
  if (byteOffset < 0 || byteOffset % 4 != 0 || byteOffset / 4 > heapElements) return false;
  if (rows < 0 || columns < 0 || rowStride < 0 || columnStride < 0) return false;
  if (rows == 0 || columns == 0) return true;
  if ((rows > 1 && rowStride == 0) || (columns > 1 && columnStride == 0)) return false;
  int64_t rowSpan = 0, columnSpan = 0, last = 0;
  if (__builtin_mul_overflow(rows - 1, rowStride, &rowSpan) ||
      __builtin_mul_overflow(columns - 1, columnStride, &columnSpan) ||
      __builtin_add_overflow(rowSpan, columnSpan, &last) || __builtin_add_overflow(last, byteOffset / 4, &last)) {
    return false;
  }
  return last < heapElements;
}

/**
 * Whether `count` positions `step` apart span at most `limit` elements: a convolution's output rows times
 * its stride, its filter rows times its dilation. Bounding these by the heap keeps the kernels' index
 * arithmetic (positions times row lengths) far from overflowing.
 */
bool spanFits(int64_t count, int64_t step, int64_t limit) {
  int64_t span = 0;
  return count == 0 || (!__builtin_mul_overflow(count - 1, step, &span) && span <= limit);
}

/** The product of `factors`, or false when it overflows. */
bool product(std::initializer_list<int64_t> factors, int64_t* result) {
  int64_t value = 1;
  for (const int64_t factor : factors) {
    if (__builtin_mul_overflow(value, factor, &value)) return false;
  }
  *result = value;
  return true;
}

/** Reads a call's arguments: the heap, then `names.size()` integers, then the relu flag (if `relu` is given). */
bool readCall(napi_env env, napi_callback_info info, const char* kernel, const std::vector<const char*>& names,
              float** heap, size_t* heapBytes, std::vector<int64_t>* integers, bool* relu) {
  const size_t expected = names.size() + (relu == nullptr ? 1 : 2);
  size_t count = expected;
  std::vector<napi_value> argv(expected);
  napi_get_cb_info(env, info, &count, argv.data(), nullptr, nullptr);
  const std::string prefix = std::string(kernel) + ": ";
  if (count != expected) {
    return throwError(env, prefix + "expected " + std::to_string(expected) + " arguments, got " + std::to_string(count));
  }
  void* data = nullptr;
  if (napi_get_arraybuffer_info(env, argv[0], &data, heapBytes) != napi_ok) {
    return throwError(env, prefix + "the heap must be an ArrayBuffer");
  }
  *heap = static_cast<float*>(data);
  integers->resize(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    if (!readInteger(env, argv[i + 1], (prefix + names[i]).c_str(), &(*integers)[i])) return false;
    // No offset, size, stride or padding can exceed the heap: bounding them all by it keeps every
    // product of two of them, in the checks and in the kernels' indexing, far from overflowing.
    if ((*integers)[i] > static_cast<int64_t>(*heapBytes)) {
      return throwError(env, prefix + names[i] + " is larger than the heap (" + std::to_string(*heapBytes) + " bytes)");
    }
  }
  if (relu != nullptr && napi_get_value_bool(env, argv[expected - 1], relu) != napi_ok) {
    return throwError(env, prefix + "relu must be a boolean");
  }
  return true;
}

// matMul(heap, left, leftRowStride, leftColumnStride, right, rightRowStride, rightColumnStride,
//        out, bias, rows, columns, inner, relu): offsets in bytes, bias -1 for none, strides in elements.
napi_value MatMul(napi_env env, napi_callback_info info) {
  float* heap;
  size_t heapBytes;
  std::vector<int64_t> v;
  bool relu;
  if (!readCall(env, info, "matMul",
                {"left", "leftRowStride", "leftColumnStride", "right", "rightRowStride", "rightColumnStride", "out",
                 "bias", "rows", "columns", "inner"},
                &heap, &heapBytes, &v, &relu)) {
    return nullptr;
  }
  const int64_t rows = v[8], columns = v[9], inner = v[10];
  if (rows < 0 || columns < 0 || inner < 0) {
    throwError(env, "matMul: rows, columns and inner must not be negative");
    return nullptr;
  }
  const bool hasBias = v[7] >= 0;
  if (rows == 0 || columns == 0) return nullptr;  // nothing to write
  if (!fitsInHeap(v[0], rows, inner, v[1], v[2], heapBytes) ||
      !fitsInHeap(v[3], inner, columns, v[4], v[5], heapBytes) ||
      !fitsInHeap(v[6], rows, columns, columns, 1, heapBytes) ||
      (hasBias && !fitsInHeap(v[7], 1, columns, columns, 1, heapBytes))) {
    throwError(env, "matMul: an operand lies outside the heap (" + std::to_string(heapBytes) + " bytes)");
    return nullptr;
  }
  callosum::matMul({
      {heap + v[0] / 4, v[1], v[2]},
      {heap + v[3] / 4, v[4], v[5]},
      heap + v[6] / 4,
      hasBias ? heap + v[7] / 4 : nullptr,
      rows,
      columns,
      inner,
      relu,
  });
  return nullptr;
}

// conv2d(heap, input, filter, out, bias, batch, inHeight, inWidth, inChannels, outHeight, outWidth,
//        outChannels, filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth,
//        padTop, padLeft, relu): NHWC input and output, filter [filterHeight, filterWidth, inChannels,
//        outChannels], offsets in bytes, bias -1 for none.
napi_value Conv2D(napi_env env, napi_callback_info info) {
  float* heap;
  size_t heapBytes;
  std::vector<int64_t> v;
  bool relu;
  if (!readCall(env, info, "conv2d",
                {"input", "filter", "out", "bias", "batch", "inHeight", "inWidth", "inChannels", "outHeight",
                 "outWidth", "outChannels", "filterHeight", "filterWidth", "strideHeight", "strideWidth",
                 "dilationHeight", "dilationWidth", "padTop", "padLeft"},
                &heap, &heapBytes, &v, &relu)) {
    return nullptr;
  }
  const int64_t batch = v[4], inHeight = v[5], inWidth = v[6], inChannels = v[7], outHeight = v[8],
                outWidth = v[9], outChannels = v[10], filterHeight = v[11], filterWidth = v[12];
  for (size_t i = 4; i < v.size(); ++i) {
    const bool positive = i >= 13 && i <= 16;  // strides and dilations
    if (v[i] < (positive ? 1 : 0)) {
      throwError(env, "conv2d: sizes and padding must not be negative, strides and dilations must be positive");
      return nullptr;
    }
  }
  int64_t rows = 0, taps = 0, inputPixels = 0;
  if (!product({batch, outHeight, outWidth}, &rows) || !product({filterHeight, filterWidth, inChannels}, &taps) ||
      !product({batch, inHeight, inWidth}, &inputPixels)) {
    throwError(env, "conv2d: sizes too large");
    return nullptr;
  }
  const int64_t heapElements = static_cast<int64_t>(heapBytes / 4);
  if (!spanFits(outHeight, v[13], heapElements) || !spanFits(outWidth, v[14], heapElements) ||
      !spanFits(filterHeight, v[15], heapElements) || !spanFits(filterWidth, v[16], heapElements)) {
    throwError(env, "conv2d: strides or dilations span more than the heap");
    return nullptr;
  }
  if (rows == 0 || outChannels == 0) return nullptr;  // nothing to write
  const bool hasBias = v[3] >= 0;
  if (!fitsInHeap(v[0], inputPixels, inChannels, inChannels, 1, heapBytes) ||
      !fitsInHeap(v[1], taps, outChannels, outChannels, 1, heapBytes) ||
      !fitsInHeap(v[2], rows, outChannels, outChannels, 1, heapBytes) ||
      (hasBias && !fitsInHeap(v[3], 1, outChannels, outChannels, 1, heapBytes))) {
    throwError(env, "conv2d: an operand lies outside the heap (" + std::to_string(heapBytes) + " bytes)");
    return nullptr;
  }
  callosum::convolve({
      {heap + v[0] / 4, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth, v[13], v[14],
       v[15], v[16], v[17], v[18]},
      {heap + v[1] / 4, outChannels, 1},
      heap + v[2] / 4,
      hasBias ? heap + v[3] / 4 : nullptr,
      rows,
      outChannels,
      relu,
  });
  return nullptr;
}

// conv2dBackpropFilter(heap, input, dy, dW, batch, inHeight, inWidth, inChannels, outHeight, outWidth,
//        outChannels, filterHeight, filterWidth, strideHeight, strideWidth, padTop, padLeft): NHWC input
//        and dy, dW [filterHeight, filterWidth, inChannels, outChannels], offsets in bytes.
napi_value Conv2DBackpropFilter(napi_env env, napi_callback_info info) {
  float* heap;
  size_t heapBytes;
  std::vector<int64_t> v;
  if (!readCall(env, info, "conv2dBackpropFilter",
                {"input", "dy", "dW", "batch", "inHeight", "inWidth", "inChannels", "outHeight", "outWidth",
                 "outChannels", "filterHeight", "filterWidth", "strideHeight", "strideWidth", "padTop", "padLeft"},
                &heap, &heapBytes, &v, nullptr)) {
    return nullptr;
  }
  const int64_t batch = v[3], inHeight = v[4], inWidth = v[5], inChannels = v[6], outHeight = v[7],
                outWidth = v[8], outChannels = v[9], filterHeight = v[10], filterWidth = v[11];
  for (size_t i = 3; i < v.size(); ++i) {
    const bool positive = i == 12 || i == 13;  // strides
    if (v[i] < (positive ? 1 : 0)) {
      throwError(env, "conv2dBackpropFilter: sizes and padding must not be negative, strides must be positive");
      return nullptr;
    }
  }
  int64_t pixels = 0, taps = 0, inputPixels = 0;
  if (!product({batch, outHeight, outWidth}, &pixels) || !product({filterHeight, filterWidth, inChannels}, &taps) ||
      !product({batch, inHeight, inWidth}, &inputPixels)) {
    throwError(env, "conv2dBackpropFilter: sizes too large");
    return nullptr;
  }
  const int64_t heapElements = static_cast<int64_t>(heapBytes / 4);
  if (!spanFits(outHeight, v[12], heapElements) || !spanFits(outWidth, v[13], heapElements) ||
      filterHeight > heapElements || filterWidth > heapElements) {
    throwError(env, "conv2dBackpropFilter: strides span more than the heap");
    return nullptr;
  }
  if (taps == 0 || outChannels == 0) return nullptr;  // nothing to write
  if (!fitsInHeap(v[0], inputPixels, inChannels, inChannels, 1, heapBytes) ||
      !fitsInHeap(v[1], pixels, outChannels, outChannels, 1, heapBytes) ||
      !fitsInHeap(v[2], taps, outChannels, outChannels, 1, heapBytes)) {
    throwError(env, "conv2dBackpropFilter: an operand lies outside the heap (" + std::to_string(heapBytes) +
                        " bytes)");
    return nullptr;
  }
  callosum::convolveFilterGradient({
      {heap + v[0] / 4, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth, v[12], v[13],
       1, 1, v[14], v[15]},
      {heap + v[1] / 4, outChannels, 1},
      heap + v[2] / 4,
      pixels,
      outChannels,
  });
  return nullptr;
}

/** A Float32Array argument's elements, or a thrown error naming it. */
bool readFloats(napi_env env, napi_value value, const std::string& name, float** data, size_t* length) {
  bool isTypedArray = false;
  napi_typedarray_type type;
  void* elements = nullptr;
  if (napi_is_typedarray(env, value, &isTypedArray) != napi_ok || !isTypedArray ||
      napi_get_typedarray_info(env, value, &type, length, &elements, nullptr, nullptr) != napi_ok ||
      type != napi_float32_array) {
    return throwError(env, name + " must be a Float32Array");
  }
  *data = static_cast<float*>(elements);
  return true;
}

bool readNumber(napi_env env, napi_value value, const std::string& name, double* result) {
  if (napi_get_value_double(env, value, result) != napi_ok) return throwError(env, name + " must be a number");
  return true;
}

/** Reads `vectors` Float32Arrays of one length, then `numbers` numbers, as the call's arguments. */
bool readVectorCall(napi_env env, napi_callback_info info, const std::string& kernel,
                    const std::vector<const char*>& vectorNames, const std::vector<const char*>& numberNames,
                    std::vector<float*>* vectors, size_t* length, std::vector<double>* numbers) {
  const size_t expected = vectorNames.size() + numberNames.size();
  size_t count = expected;
  std::vector<napi_value> argv(expected);
  napi_get_cb_info(env, info, &count, argv.data(), nullptr, nullptr);
  if (count != expected) {
    return throwError(env, kernel + ": expected " + std::to_string(expected) + " arguments, got " +
                               std::to_string(count));
  }
  vectors->resize(vectorNames.size());
  for (size_t i = 0; i < vectorNames.size(); ++i) {
    size_t vectorLength = 0;
    if (!readFloats(env, argv[i], kernel + ": " + vectorNames[i], &(*vectors)[i], &vectorLength)) return false;
    if (i == 0) *length = vectorLength;
    if (vectorLength != *length) {
      return throwError(env, kernel + ": " + vectorNames[i] + " has " + std::to_string(vectorLength) +
                                 " elements, " + vectorNames[0] + " " + std::to_string(*length));
    }
  }
  numbers->resize(numberNames.size());
  for (size_t i = 0; i < numberNames.size(); ++i) {
    if (!readNumber(env, argv[vectorNames.size() + i], kernel + ": " + numberNames[i], &(*numbers)[i])) return false;
  }
  return true;
}

// adam(params, gradient, firstMoment, secondMoment, beta1, beta2, oneMinusBeta1, oneMinusBeta2,
//      firstMomentScale, secondMomentScale, epsilon, learningRate, weightDecay)
napi_value Adam(napi_env env, napi_callback_info info) {
  std::vector<float*> v;
  size_t length = 0;
  std::vector<double> n;
  if (!readVectorCall(env, info, "adam", {"params", "gradient", "firstMoment", "secondMoment"},
                      {"beta1", "beta2", "oneMinusBeta1", "oneMinusBeta2", "firstMomentScale", "secondMomentScale",
                       "epsilon", "learningRate", "weightDecay"},
                      &v, &length, &n)) {
    return nullptr;
  }
  callosum::adam(length, v[0], v[1], v[2], v[3], {n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8]});
  return nullptr;
}

// allFinite(values) → boolean
napi_value AllFinite(napi_env env, napi_callback_info info) {
  std::vector<float*> v;
  size_t length = 0;
  std::vector<double> n;
  if (!readVectorCall(env, info, "allFinite", {"values"}, {}, &v, &length, &n)) return nullptr;
  napi_value result;
  napi_get_boolean(env, callosum::allFinite(length, v[0]), &result);
  return result;
}

// scaleInto(into, values, scale) and addScaled(into, a, b, scale)
napi_value ScaleInto(napi_env env, napi_callback_info info) {
  std::vector<float*> v;
  size_t length = 0;
  std::vector<double> n;
  if (!readVectorCall(env, info, "scaleInto", {"into", "values"}, {"scale"}, &v, &length, &n)) return nullptr;
  callosum::scaleSum(length, v[0], v[1], nullptr, n[0]);
  return nullptr;
}

napi_value AddScaled(napi_env env, napi_callback_info info) {
  std::vector<float*> v;
  size_t length = 0;
  std::vector<double> n;
  if (!readVectorCall(env, info, "addScaled", {"into", "a", "b"}, {"scale"}, &v, &length, &n)) return nullptr;
  callosum::scaleSum(length, v[0], v[1], v[2], n[0]);
  return nullptr;
}

// keepFreedMemory() → whether glibc's malloc now keeps freed memory for reuse (see native-kernels.ts).
napi_value KeepFreedMemory(napi_env env, napi_callback_info) {
  bool kept = false;
#if defined(__GLIBC__)
  // The largest mmap threshold glibc accepts (half its 64 MiB heap size) and a trim threshold it never
  // reaches in practice: blocks up to 32 MiB come from the heap, and the heap is not given back.
  kept = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#endif
  napi_value result;
  napi_get_boolean(env, kept, &result);
  return result;
}

napi_value InstructionSet(napi_env env, napi_callback_info) {
  napi_value result;
  napi_create_string_utf8(env, callosum::matMulInstructionSet(), NAPI_AUTO_LENGTH, &result);
  return result;
}

}  // namespace

NAPI_MODULE_INIT() {
  const std::pair<const char*, napi_callback> functions[] = {
      {"matMul", MatMul},   {"conv2d", Conv2D},         {"conv2dBackpropFilter", Conv2DBackpropFilter},
      {"adam", Adam},
      {"allFinite", AllFinite}, {"scaleInto", ScaleInto}, {"addScaled", AddScaled},
      {"keepFreedMemory", KeepFreedMemory}, {"instructionSet", InstructionSet}};
  for (const auto& [name, callback] : functions) {
    napi_value function;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &function);
    napi_set_named_property(env, exports, name, function);
  }
  return exports;
}
