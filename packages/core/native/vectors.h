// Passes over flat float32 vectors (a model's parameters, gradients and optimizer moments), working on
// JavaScript's own Float32Arrays in place. Each does the float64 operations of core's JavaScript and
// WebAssembly versions in the same order, rounding to float32 where they store, with no fused
// multiply-add (-ffp-contract=off), so the bits are theirs; the compiler vectorizes the loops.
#pragma once

#include <cstddef>

namespace callosum {

struct AdamStep {
  double beta1, beta2, oneMinusBeta1, oneMinusBeta2;
  double firstMomentScale, secondMomentScale, epsilon, learningRate, weightDecay;
};

/** Adam with decoupled weight decay over `count` parameters, updating params and both moments in place. */
void adam(size_t count, float* params, const float* gradient, float* firstMoment, float* secondMoment,
          const AdamStep& step);

/** Whether every value is finite. */
bool allFinite(size_t count, const float* values);

/** into = float32((float64(a) [+ float64(b)]) × scale); b may be nullptr. into may alias a or b. */
void scaleSum(size_t count, float* into, const float* a, const float* b, double scale);

}  // namespace callosum
