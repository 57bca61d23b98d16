import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { CastAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

interface IdentityParams {
  inputs: { x: TensorInfo };
  backend: BackendWasm;
}

interface CastParams extends IdentityParams {
  attrs: CastAttrs;
}

type WasmKernelArgs = Parameters<KernelFunc>[0];

/**
 * Replaces wasm's Identity, which copies its input, with one that shares the input's memory, as the cpu
 * backend's Identity and wasm's own Reshape do: tensors are immutable. tfjs runs Identity on every
 * tensor it keeps for the backward pass (`Engine.clone`), which for a small CNN at batch 64 is 2.8 ms of
 * copying per training step. Strings, which wasm keeps outside its memory, still go to wasm's kernel.
 *
 * @param original the wasm Identity config being replaced (its setupFunc is kept).
 */
export function createIdentityKernel(original: KernelConfig): KernelConfig {
  const wasmIdentity = original.kernelFunc;
  function identity(params: IdentityParams): TensorInfo {
    const { x } = params.inputs;
    if (x.dtype === 'string') return wasmIdentity(params as unknown as WasmKernelArgs) as TensorInfo;
    return share(x, params.backend);
  }
  return { ...original, kernelFunc: identity as unknown as KernelFunc };
}

/**
 * Replaces wasm's Cast, which copies even when the dtype does not change, as in tfjs's ReLU gradient
 * (`cast(step(x), 'float32')`, 0.7 ms for a [64,26,26,32] activation): a cast to the tensor's own
 * dtype shares its memory. Real conversions still go to wasm's kernel.
 *
 * @param original the wasm Cast config being replaced (its setupFunc is kept).
 */
export function createCastKernel(original: KernelConfig): KernelConfig {
  const wasmCast = original.kernelFunc;
  function cast(params: CastParams): TensorInfo {
    const { x } = params.inputs;
    if (x.dtype !== params.attrs.dtype || x.dtype === 'string') {
      return wasmCast(params as unknown as WasmKernelArgs) as TensorInfo;
    }
    return share(x, params.backend);
  }
  return { ...original, kernelFunc: cast as unknown as KernelFunc };
}

/** A second reference to `x`'s memory, counted so that it is freed with the last one. */
function share(x: TensorInfo, backend: BackendWasm): TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}
