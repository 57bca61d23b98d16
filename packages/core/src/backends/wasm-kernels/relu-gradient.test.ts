import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from './index.js';
import { RELU_GRADIENT } from './relu-gradient.js';
import { computeOn, differingBits, nanPositions, seededUniform, withoutNaN } from './test-support.js';

registerWasmTrainingKernels();

// Special values first, then random ones: an odd length leaves elements after the last whole f32x4.
const special = [Number.NaN, -1, 0, -0, 1, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e-45, -1e-45];
const length = 4099;
const xValues = Float32Array.from({ length }, (_, i) => special[i] ?? (seededUniform(1, i)[0] as number));
const dyValues = seededUniform(length, 3, -2, 2);
dyValues.set([2, -3, -4, -5, 6, Number.NaN, 8, -9, 10]);

/** ReLU's gradient of x against the upstream gradient dy, through tfjs's gradient machinery. */
const reluGradient = () =>
  tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.relu(x), tf.tensor(dyValues))))(tf.tensor(xValues));

/** tfjs's own formula for it: dy × step(x), three kernels. */
const tfjsFormula = () => tf.mul(tf.tensor(dyValues), tf.cast(tf.step(tf.tensor(xValues)), 'float32'));

describe("ReLU's gradient on wasm", () => {
  it("gives the bits of tfjs's formula (step, cast, multiply), special values included", async () => {
    const fused = await computeOn('wasm', reluGradient);
    const formula = await computeOn('wasm', tfjsFormula);
    const cpu = await computeOn('cpu', reluGradient);
    // NaN payloads may differ; the NaN positions may not.
    expect(nanPositions(fused.values)).toEqual([0, 5]);
    expect(nanPositions(formula.values)).toEqual([0, 5]);
    expect(differingBits(withoutNaN(fused.values), withoutNaN(formula.values))).toBe(0);
    expect(differingBits(withoutNaN(fused.values), withoutNaN(cpu.values))).toBe(0);
    expect(Object.is(fused.values[2], -0)).toBe(true);
  });

  const kernelsOn = async (backend: 'wasm' | 'cpu') => {
    await tf.setBackend(backend);
    const x = tf.tensor(xValues);
    const { kernels } = await tf.profile(() => tf.grad((v: tf.Tensor) => tf.sum(tf.relu(v)))(x));
    x.dispose();
    return kernels.map((kernel) => kernel.name);
  };

  it('is one kernel on wasm and tfjs’s formula on cpu', async () => {
    const wasm = await kernelsOn('wasm');
    expect(wasm).toContain(RELU_GRADIENT);
    expect(wasm).not.toContain('Step');
    const cpu = await kernelsOn('cpu');
    expect(cpu).toContain('Step');
    expect(cpu).not.toContain(RELU_GRADIENT);
  });

  it('comes back when tfjs registers its own gradient again (as importing @tensorflow/tfjs does)', async () => {
    tf.registerGradient({
      kernelName: tf.Relu,
      inputsToSave: ['x'],
      gradFunc: (dy, saved) => ({
        x: () => tf.mul(dy as tf.Tensor, tf.cast(tf.step(saved[0] as tf.Tensor), 'float32')),
      }),
    });
    expect(await kernelsOn('wasm')).toContain('Step');
    registerWasmTrainingKernels();
    expect(await kernelsOn('wasm')).toContain(RELU_GRADIENT);
  });
});
