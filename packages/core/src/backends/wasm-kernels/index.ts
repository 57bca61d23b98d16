// Loading the wasm backend registers its kernels, which the kernels below wrap or call.
import '@tensorflow/tfjs-backend-wasm';
import {
  _FusedMatMul,
  Add,
  BatchMatMul,
  Cast,
  Conv2D,
  DepthwiseConv2dNativeBackpropFilter,
  DepthwiseConv2dNativeBackpropInput,
  FusedConv2D,
  getKernel,
  Identity,
  type KernelConfig,
  MaxPoolGrad,
  registerKernel,
  Sum,
  Transpose,
  UnsortedSegmentSum,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import { CallosumError, ErrorCodes } from '../../errors.js';
import { createBatchMatMulKernel } from './batch-mat-mul.js';
import { createBiasAddKernel } from './bias-add.js';
import { createConv2DKernel } from './conv2d.js';
import { createConv2DBackpropFilterKernel } from './conv2d-backprop-filter.js';
import { createDepthwiseConv2dBackpropFilterKernel } from './depthwise-conv2d-backprop-filter.js';
import { createDepthwiseConv2dBackpropInputKernel } from './depthwise-conv2d-backprop-input.js';
import { createFusedMatMulKernel } from './fused-mat-mul.js';
import { createCastKernel, createIdentityKernel } from './identity.js';
import { createMaxPoolGradKernel } from './max-pool-grad.js';
import { createReluGradientKernel, ensureFusedReluGradient } from './relu-gradient.js';
import { createSumKernel } from './sum.js';
import { createTransposeKernel } from './transpose.js';
import { createUnsortedSegmentSumKernel } from './unsorted-segment-sum.js';

let registered = false;
/** wasm's own kernels, as they were before registerWasmTrainingKernels replaced them. */
const replaced = new Map<string, KernelConfig>();

/**
 * Makes the tfjs wasm backend able to train convolutional networks (depthwise and separable ones too) and
 * embeddings, and fast at it: adds the missing Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter,
 * DepthwiseConv2dNativeBackpropInput and UnsortedSegmentSum kernels and replaces BatchMatMul, _FusedMatMul,
 * Conv2D, FusedConv2D, MaxPoolGrad, Transpose, Sum, Add (of a bias), Identity and Cast (see each kernel for
 * why), and has ReLU's gradient take one pass instead of three on wasm (relu-gradient.ts). The products
 * and convolutions use core's native kernels where they are available (../native-kernels.ts).
 *
 * Idempotent, and may be called before or after `tf.setBackend('wasm')`: replaced kernels keep the
 * original's setupFunc, which the backend runs at initialisation (and which has already run if the backend
 * is initialised), and the wasm kernels called from here are the originals captured at the first call.
 */
export function registerWasmTrainingKernels(): void {
  ensureFusedReluGradient();
  if (registered) {
    return;
  }
  const originalBatchMatMul = requireWasmKernel(BatchMatMul);
  const originalFusedMatMul = requireWasmKernel(_FusedMatMul);
  const originalConv2D = requireWasmKernel(Conv2D);
  const originalFusedConv2D = requireWasmKernel(FusedConv2D);
  const originalTranspose = requireWasmKernel(Transpose);
  const originalMaxPoolGrad = requireWasmKernel(MaxPoolGrad);
  const originalSum = requireWasmKernel(Sum);
  const originalAdd = requireWasmKernel(Add);
  const originalIdentity = requireWasmKernel(Identity);
  const originalCast = requireWasmKernel(Cast);

  const transpose = createTransposeKernel(originalTranspose);

  registerKernel(createConv2DBackpropFilterKernel(originalBatchMatMul.kernelFunc));
  // Gather's gradient (Embedding layers); a later wasm build may bring its own.
  if (getKernel(UnsortedSegmentSum, 'wasm') === undefined) registerKernel(createUnsortedSegmentSumKernel());
  // The gradients of DepthwiseConv2D and SeparableConv2D layers; likewise.
  if (getKernel(DepthwiseConv2dNativeBackpropFilter, 'wasm') === undefined) {
    registerKernel(createDepthwiseConv2dBackpropFilterKernel());
  }
  if (getKernel(DepthwiseConv2dNativeBackpropInput, 'wasm') === undefined) {
    registerKernel(createDepthwiseConv2dBackpropInputKernel());
  }
  replaceKernel(createBatchMatMulKernel(originalBatchMatMul, transpose.kernelFunc));
  replaceKernel(createFusedMatMulKernel(originalFusedMatMul));
  replaceKernel(createConv2DKernel(originalConv2D));
  replaceKernel(createConv2DKernel(originalFusedConv2D));
  replaceKernel(transpose);
  replaceKernel(createMaxPoolGradKernel(originalMaxPoolGrad));
  replaceKernel(createSumKernel(originalSum));
  replaceKernel(createBiasAddKernel(originalAdd));
  replaceKernel(createIdentityKernel(originalIdentity));
  replaceKernel(createCastKernel(originalCast));
  registerKernel(createReluGradientKernel());
  registered = true;
}

/**
 * wasm's own kernel `kernelName` as registerWasmTrainingKernels found it, if it replaced it: for tests and
 * benches that compare a kernel with the one it replaced.
 */
export function wasmKernelBeforeReplacement(kernelName: string): KernelConfig | undefined {
  return replaced.get(kernelName);
}

function requireWasmKernel(kernelName: string): KernelConfig {
  const config = getKernel(kernelName, 'wasm');
  if (config === undefined) {
    throw new CallosumError(
      ErrorCodes.BACKEND_UNAVAILABLE,
      `The wasm backend has no '${kernelName}' kernel to build the training kernels on`,
    );
  }
  return config;
}

/** Unregisters first: registering over an existing kernel works too, but logs a warning. */
function replaceKernel(config: KernelConfig): void {
  replaced.set(config.kernelName, requireWasmKernel(config.kernelName));
  unregisterKernel(config.kernelName, config.backendName);
  registerKernel(config);
}
