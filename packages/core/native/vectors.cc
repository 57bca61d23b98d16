#include "vectors.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "target-clones.h"

namespace callosum {

CALLOSUM_TARGET_CLONES
void adam(size_t count, float* params, const float* gradient, float* firstMoment, float* secondMoment,
          const AdamStep& s) {
  for (size_t i = 0; i < count; ++i) {
    const double g = gradient[i];
    const double p = params[i];
    const double m = s.beta1 * static_cast<double>(firstMoment[i]) + s.oneMinusBeta1 * g;
    const double v = s.beta2 * static_cast<double>(secondMoment[i]) + s.oneMinusBeta2 * g * g;
    firstMoment[i] = static_cast<float>(m);
    secondMoment[i] = static_cast<float>(v);
    const double update = m * s.firstMomentScale / (std::sqrt(v * s.secondMomentScale) + s.epsilon);
    params[i] = static_cast<float>(p - s.learningRate * (update + s.weightDecay * p));
  }
}

CALLOSUM_TARGET_CLONES
bool allFinite(size_t count, const float* values) {
  // A float32 is infinite or NaN exactly when its exponent bits are all ones.
  uint32_t nonFinite = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, sizeof bits);
    nonFinite |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return nonFinite == 0;
}

CALLOSUM_TARGET_CLONES
void scaleSum(size_t count, float* into, const float* a, const float* b, double scale) {
  if (b == nullptr) {
    for (size_t i = 0; i < count; ++i) into[i] = static_cast<float>(static_cast<double>(a[i]) * scale);
  } else {
    for (size_t i = 0; i < count; ++i) {
      into[i] = static_cast<float>((static_cast<double>(a[i]) + static_cast<double>(b[i])) * scale);
    }
  }
}

}  // namespace callosum
