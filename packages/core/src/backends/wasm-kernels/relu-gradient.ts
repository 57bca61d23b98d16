import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  engine,
  type GradConfig,
  getBackend,
  getGradient,
  type KernelConfig,
  type KernelFunc,
  Relu,
  registerGradient,
  type Tensor,
  type TensorInfo,
  util,
} from '@tensorflow/tfjs-core';
import { CallosumError, ErrorCodes } from '../../errors.js';
import { type HeapKernelsFor, heapKernelsFor } from './heap-kernels.js';

/** core's kernel for ReLU's gradient in one pass (registered for wasm only). */
export const RELU_GRADIENT = 'CallosumReluGradient';

interface ReluGradientParams {
  inputs: { x: TensorInfo; dy: TensorInfo };
  backend: BackendWasm;
}

/**
 * dy × step(x) by assembly/relu-gradient.ts on the backend's heap: one pass over a layer's activation
 * where tfjs's gradient takes three (Step, Cast, Multiply; 1.9 ms of a reference-model step for the
 * convolution's 11 MB output), with the same bits.
 */
export function createReluGradientKernel(kernelsFor: HeapKernelsFor = heapKernelsFor): KernelConfig {
  function reluGradient({ inputs, backend }: ReluGradientParams): TensorInfo {
    const { x, dy } = inputs;
    const kernels = kernelsFor(backend);
    if (kernels === undefined) {
      throw new CallosumError(ErrorCodes.INTERNAL, `${RELU_GRADIENT} ran where core's heap kernels are not`);
    }
    const out = backend.makeOutput([...x.shape], 'float32');
    kernels.reluGradient(
      backend.getMemoryOffset(x.dataId),
      backend.getMemoryOffset(dy.dataId),
      backend.getMemoryOffset(out.dataId),
      util.sizeFromShape(x.shape),
    );
    return out;
  }
  return {
    kernelName: RELU_GRADIENT,
    backendName: 'wasm',
    kernelFunc: reluGradient as unknown as KernelFunc,
  };
}

/** The gradient configs made here, to tell them from tfjs's. */
const ours = new WeakSet<GradConfig>();

/**
 * Makes ReLU's registered gradient the one of createReluGradientConfig, unless it already is. tfjs
 * registers its gradients again whenever a module that registers them all is first imported (such as
 * `@tensorflow/tfjs`), which would bring back the three passes: registerWasmTrainingKernels calls this on
 * every call.
 */
export function ensureFusedReluGradient(): void {
  const registered = getGradient(Relu);
  if (registered !== undefined && !ours.has(registered))
    registerGradient(createReluGradientConfig(registered));
}

/**
 * ReLU's gradient as tfjs registers it, except on a wasm backend whose heap core's kernels use, where
 * float32 tensors take RELU_GRADIENT instead. The gradient registry is global; every other backend keeps
 * tfjs's formula.
 *
 * @param original tfjs's Relu gradient.
 */
export function createReluGradientConfig(
  original: GradConfig,
  kernelsFor: HeapKernelsFor = heapKernelsFor,
): GradConfig {
  const config: GradConfig = {
    ...original,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as Tensor[];
      const fused =
        getBackend() === 'wasm' &&
        x !== undefined &&
        x.dtype === 'float32' &&
        !Array.isArray(dy) &&
        dy.dtype === 'float32' &&
        util.arraysEqual(x.shape, dy.shape) &&
        kernelsFor(engine().backend as BackendWasm) !== undefined;
      if (!fused) return original.gradFunc(dy, saved, attrs);
      return { x: () => engine().runKernel(RELU_GRADIENT, { x, dy: dy as Tensor }) as Tensor };
    },
  };
  ours.add(config);
  return config;
}
