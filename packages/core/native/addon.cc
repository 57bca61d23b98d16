// Node-API binding of core's native kernels. They work on the wasm backend's heap (a WebAssembly
// memory's ArrayBuffer), addressed by byte offsets as the backend's getMemoryOffset gives them, so
// tensors are neither copied in nor out. Every range a call would touch is checked against the heap
// first: a wrong offset from JavaScript is an exception, never a write outside the heap.
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "mat-mul.h"

namespace {

bool throwError(napi_env env, const std::string& message) {
  napi_throw_error(env, "ERR_CALLOSUM_NATIVE_KERNEL", message.c_str());
  return false;
}

bool readInteger(napi_env env, napi_value value, const char* name, int64_t* result) {
  double number;
  if (napi_get_value_double(env, value, &number) != napi_ok || !std::isfinite(number) ||
      number != std::floor(number) || std::fabs(number) > 9007199254740991.0) {
    return throwError(env, std::string("matMul: ") + name + " must be an integer");
  }
  *result = static_cast<int64_t>(number);
  return true;
}

/** Whether a rows × columns matrix at byteOffset with these element strides lies inside the heap. */
bool fitsInHeap(int64_t byteOffset, int64_t rows, int64_t columns, int64_t rowStride, int64_t columnStride,
                size_t heapBytes) {
  if (byteOffset < 0 || byteOffset % 4 != 0 || rowStride < 0 || columnStride < 0) return false;
  if (rows == 0 || columns == 0) return byteOffset <= static_cast<int64_t>(heapBytes);
  const int64_t lastElement = (rows - 1) * rowStride + (columns - 1) * columnStride;
  return byteOffset / 4 + lastElement < static_cast<int64_t>(heapBytes / 4);
}

// matMul(heap, left, leftRowStride, leftColumnStride, right, rightRowStride, rightColumnStride,
//        out, bias, rows, columns, inner, relu): offsets in bytes, bias -1 for none, strides in elements.
napi_value MatMul(napi_env env, napi_callback_info info) {
  constexpr size_t kArguments = 13;
  size_t count = kArguments;
  napi_value argv[kArguments];
  napi_get_cb_info(env, info, &count, argv, nullptr, nullptr);
  if (count != kArguments) {
    throwError(env, "matMul: expected 13 arguments, got " + std::to_string(count));
    return nullptr;
  }
  void* data = nullptr;
  size_t heapBytes = 0;
  if (napi_get_arraybuffer_info(env, argv[0], &data, &heapBytes) != napi_ok) {
    throwError(env, "matMul: the heap must be an ArrayBuffer");
    return nullptr;
  }
  static const char* const names[] = {"left", "leftRowStride", "leftColumnStride", "right",
                                      "rightRowStride", "rightColumnStride", "out", "bias",
                                      "rows", "columns", "inner"};
  int64_t v[11];
  for (int i = 0; i < 11; ++i) {
    if (!readInteger(env, argv[i + 1], names[i], &v[i])) return nullptr;
  }
  bool relu = false;
  if (napi_get_value_bool(env, argv[12], &relu) != napi_ok) {
    throwError(env, "matMul: relu must be a boolean");
    return nullptr;
  }
  const int64_t rows = v[8], columns = v[9], inner = v[10];
  if (rows < 0 || columns < 0 || inner < 0) {
    throwError(env, "matMul: rows, columns and inner must not be negative");
    return nullptr;
  }
  const bool hasBias = v[7] >= 0;
  if (!fitsInHeap(v[0], rows, inner, v[1], v[2], heapBytes) ||
      !fitsInHeap(v[3], inner, columns, v[4], v[5], heapBytes) ||
      !fitsInHeap(v[6], rows, columns, columns, 1, heapBytes) ||
      (hasBias && !fitsInHeap(v[7], 1, columns, columns, 1, heapBytes))) {
    throwError(env, "matMul: an operand lies outside the heap (" + std::to_string(heapBytes) + " bytes)");
    return nullptr;
  }
  float* heap = static_cast<float*>(data);
  callosum::MatMulProblem problem{
      {heap + v[0] / 4, v[1], v[2]},
      {heap + v[3] / 4, v[4], v[5]},
      heap + v[6] / 4,
      hasBias ? heap + v[7] / 4 : nullptr,
      rows,
      columns,
      inner,
      relu,
  };
  callosum::matMul(problem);
  return nullptr;
}

napi_value InstructionSet(napi_env env, napi_callback_info) {
  napi_value result;
  napi_create_string_utf8(env, callosum::matMulInstructionSet(), NAPI_AUTO_LENGTH, &result);
  return result;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_value matMul;
  napi_value instructionSet;
  napi_create_function(env, "matMul", NAPI_AUTO_LENGTH, MatMul, nullptr, &matMul);
  napi_create_function(env, "instructionSet", NAPI_AUTO_LENGTH, InstructionSet, nullptr, &instructionSet);
  napi_set_named_property(env, exports, "matMul", matMul);
  napi_set_named_property(env, exports, "instructionSet", instructionSet);
  return exports;
}
