import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { it } from 'vitest';
import { seededIntegers, seededUniform } from './backend-comparison.js';
import { registerWasmTrainingKernels } from './index.js';

const MODE = process.env.BENCH_MODE ?? 'new';

function conv3dDelegation(): tf.KernelConfig {
  return {
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
      const [fh, fw, ci, co] = a.filterShape;
      const s = typeof a.strides === 'number' ? [a.strides, a.strides] : a.strides;
      const x5 = { ...x, shape: [x.shape[0], 1, ...x.shape.slice(1)] } as tf.TensorInfo;
      const dy5 = { ...dy, shape: [dy.shape[0], 1, ...dy.shape.slice(1)] } as tf.TensorInfo;
      const k = tf.getKernel('Conv3DBackpropFilterV2', 'wasm') as tf.KernelConfig;
      const out = k.kernelFunc({
        inputs: { x: x5, dy: dy5 },
        backend,
        attrs: {
          strides: [1, s[0], s[1]],
          pad: a.pad as 'valid',
          filterShape: [1, fh, fw, ci, co],
        } as unknown as tf.NamedAttrMap,
      }) as tf.TensorInfo;
      return { ...out, shape: [fh, fw, ci, co] };
    },
  };
}

function plainJsLoop(): tf.KernelConfig {
  return {
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const be = backend as BackendWasm;
      const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
      const info = tf.backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number],
        a.filterShape,
        a.strides,
        1,
        a.pad,
      );
      const acc = new Float64Array(tf.util.sizeFromShape(a.filterShape));
      const out = be.makeOutput(a.filterShape, 'float32');
      const xv = be.typedArrayFromHeap(x);
      const dv = be.typedArrayFromHeap(dy);
      const {
        batchSize: B,
        inHeight: H,
        inWidth: W,
        inChannels: C,
        outHeight: OH,
        outWidth: OW,
        outChannels: OC,
        filterHeight: FH,
        filterWidth: FW,
      } = info;
      for (let b = 0; b < B; b++)
        for (let oy = 0; oy < OH; oy++)
          for (let ox = 0; ox < OW; ox++) {
            const dBase = ((b * OH + oy) * OW + ox) * OC;
            for (let r = 0; r < FH; r++) {
              const iy = oy * info.strideHeight - info.padInfo.top + r;
              if (iy < 0 || iy >= H) continue;
              for (let s = 0; s < FW; s++) {
                const ix = ox * info.strideWidth - info.padInfo.left + s;
                if (ix < 0 || ix >= W) continue;
                for (let c = 0; c < C; c++) {
                  const v = xv[((b * H + iy) * W + ix) * C + c] as number;
                  const wBase = ((r * FW + s) * C + c) * OC;
                  for (let o = 0; o < OC; o++) acc[wBase + o] += v * (dv[dBase + o] as number);
                }
              }
            }
          }
      be.typedArrayFromHeap(out).set(acc);
      return out;
    },
  };
}

function time(f: () => tf.Tensor | tf.Tensor[] | void, reps = 15): number {
  const once = () => {
    const r = tf.tidy(() => f() as tf.Tensor);
    tf.dispose(r);
  };
  once();
  once();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    once();
    ts.push(performance.now() - t0);
  }
  ts.sort((p, q) => p - q);
  return ts[Math.floor(ts.length / 2)] as number;
}

function trainingModel() {
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu' }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 128, activation: 'relu' }),
      tfl.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
  return model;
}

async function samplesPerSecond(batch: number): Promise<number> {
  const model = trainingModel();
  const x = tf.tensor4d(seededUniform(batch * 784, 1, 0, 1), [batch, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(seededIntegers(batch, 2, 0, 9), 'int32'), 10);
  for (let i = 0; i < 3; i++) await model.trainOnBatch(x, y);
  const rates: number[] = [];
  for (let round = 0; round < 5; round++) {
    const steps = Math.max(3, Math.round(640 / batch));
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await model.trainOnBatch(x, y);
    rates.push((steps * batch) / ((performance.now() - t0) / 1000));
  }
  tf.dispose([x, y]);
  model.dispose();
  rates.sort((p, q) => p - q);
  return rates[2] as number;
}

it('bench', async () => {
  const log = (...a: unknown[]) => process.stdout.write(`${a.join(' ')}\n`);
  const original = {
    bmm: tf.getKernel('BatchMatMul', 'wasm') as tf.KernelConfig,
    mpg: tf.getKernel('MaxPoolGrad', 'wasm') as tf.KernelConfig,
  };
  await tf.setBackend('wasm');
  if (MODE === 'baseline') {
    tf.registerKernel(conv3dDelegation());
    for (const b of [32, 64, 128])
      log(
        `baseline (conv3d delegation only) batch ${b}: ${(await samplesPerSecond(b)).toFixed(0)} samples/s`,
      );
    return;
  }
  const x = tf.tensor4d(seededUniform(64 * 784, 1, 0, 1), [64, 28, 28, 1]);
  const dy = tf.tensor4d(seededUniform(64 * 26 * 26 * 32, 2, -0.01, 0.01), [64, 26, 26, 32]);
  const convAttrs = {
    strides: 1,
    pad: 'valid',
    dataFormat: 'NHWC',
    filterShape: [3, 3, 1, 32],
  } as unknown as tf.NamedAttrMap;
  const filterGrad = () => tf.engine().runKernel<tf.Tensor>('Conv2DBackpropFilter', { x, dy }, convAttrs);
  const variants: Record<string, () => tf.KernelConfig | undefined> = {
    conv3d: conv3dDelegation,
    jsLoop: plainJsLoop,
    im2col: () => undefined,
  };
  let reference: Float32Array | undefined;
  for (const [name, make] of Object.entries(variants)) {
    const cfg = make();
    if (cfg) {
      if (tf.getKernel('Conv2DBackpropFilter', 'wasm')) tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
      tf.registerKernel(cfg);
    } else {
      tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
      registerWasmTrainingKernels();
    }
    const r = tf.tidy(filterGrad);
    const v = r.dataSync() as Float32Array;
    r.dispose();
    if (!reference) reference = Float32Array.from(v);
    let d = 0;
    for (let i = 0; i < v.length; i++) d = Math.max(d, Math.abs((v[i] as number) - (reference[i] as number)));
    log(
      `Conv2DBackpropFilter x[64,28,28,1] f[3,3,1,32] ${name}: ${time(filterGrad).toFixed(2)} ms (max diff vs conv3d ${d.toExponential(1)})`,
    );
  }
  const freshDy = () =>
    tf.engine().runKernel<tf.Tensor>('Conv2DBackpropFilter', { x, dy: tf.mul(dy, 1) }, convAttrs);
  log(
    `Conv2DBackpropFilter fresh dy each call: ${time(freshDy).toFixed(2)} ms; the mul alone: ${time(() => tf.mul(dy, 1)).toFixed(2)} ms`,
  );
  // LeNet C3 at batch 64
  const x2 = tf.tensor4d(seededUniform(64 * 14 * 14 * 6, 3, 0, 1), [64, 14, 14, 6]);
  const dy2 = tf.tensor4d(seededUniform(64 * 10 * 10 * 16, 4, -0.01, 0.01), [64, 10, 10, 16]);
  log(
    `Conv2DBackpropFilter LeNet C3 x[64,14,14,6] f[5,5,6,16] im2col: ${time(() => tf.engine().runKernel<tf.Tensor>('Conv2DBackpropFilter', { x: x2, dy: dy2 }, { strides: 1, pad: 'valid', dataFormat: 'NHWC', filterShape: [5, 5, 6, 16] } as unknown as tf.NamedAttrMap)).toFixed(2)} ms`,
  );

  const mm = (aShape: number[], bShape: number[], tA: boolean, tB: boolean) => {
    const a = tf.tensor(seededUniform(tf.util.sizeFromShape(aShape), 5), aShape);
    const b = tf.tensor(seededUniform(tf.util.sizeFromShape(bShape), 6), bShape);
    const ours = time(() => tf.matMul(a, b, tA, tB));
    const fresh = tf.getKernel('BatchMatMul', 'wasm') as tf.KernelConfig;
    tf.unregisterKernel('BatchMatMul', 'wasm');
    tf.registerKernel(original.bmm);
    const orig = time(() => tf.matMul(a, b, tA, tB));
    tf.unregisterKernel('BatchMatMul', 'wasm');
    tf.registerKernel(fresh);
    // transpose-first for batched shapes (what the override would do if it also handled batches)
    const rank = aShape.length;
    const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2];
    const tf1 = time(() => tf.matMul(tA ? tf.transpose(a, perm) : a, tB ? tf.transpose(b, perm) : b));
    log(
      `BatchMatMul ${JSON.stringify(aShape)}x${JSON.stringify(bShape)} tA=${tA} tB=${tB}: original ${orig.toFixed(2)} ms, override ${ours.toFixed(2)} ms, explicit-transpose ${tf1.toFixed(2)} ms`,
    );
    tf.dispose([a, b]);
  };
  {
    const dyd = tf.tensor(seededUniform(64 * 128, 9), [64, 128]);
    const w1 = tf.tensor(seededUniform(5408 * 128, 10), [5408, 128]);
    log(
      `dX1 = dy·W1ᵀ as (W1·dyᵀ)ᵀ: ${time(() => tf.transpose(tf.matMul(w1, tf.transpose(dyd)))).toFixed(2)} ms; override: ${time(() => tf.matMul(dyd, w1, false, true)).toFixed(2)} ms`,
    );
    tf.dispose([dyd, w1]);
  }
  mm([64, 5408], [5408, 128], false, false);
  mm([64, 5408], [64, 128], true, false);
  mm([64, 128], [5408, 128], false, true);
  mm([64, 5408], [128, 5408], false, true);
  mm([64, 128], [64, 10], true, false);
  mm([64, 10], [128, 10], false, true);
  mm([1, 4096], [1, 4096], false, true);
  mm([8, 256, 64], [8, 256, 128], true, false);
  mm([8, 64, 256], [8, 128, 256], false, true);

  const px = tf.tensor4d(seededUniform(64 * 26 * 26 * 32, 7, 0, 1), [64, 26, 26, 32]);
  const py = tf.maxPool(px, 2, 2, 'valid');
  const pdy = tf.tensor(seededUniform(py.size, 8), py.shape);
  const mpAttrs = { filterSize: 2, strides: 2, pad: 'valid' } as unknown as tf.NamedAttrMap;
  const mpg = () =>
    tf.engine().runKernel<tf.Tensor>('MaxPoolGrad', { dy: pdy, input: px, output: py }, mpAttrs);
  const ours = time(mpg);
  const fresh = tf.getKernel('MaxPoolGrad', 'wasm') as tf.KernelConfig;
  tf.unregisterKernel('MaxPoolGrad', 'wasm');
  tf.registerKernel(original.mpg);
  const orig = time(mpg);
  // tie semantics of the native kernel vs cpu
  const tieInput = [0, 0, 0, 0, -1, -2, -1, -3, 1, 1, 0, 1, 2, 0, 0, 0];
  const tieGrad = async () => {
    const xx = tf.tensor4d(tieInput, [1, 4, 4, 1]);
    const yy = tf.maxPool(xx, 2, 2, 'valid');
    const g = tf
      .engine()
      .runKernel<tf.Tensor>('MaxPoolGrad', { dy: tf.ones(yy.shape), input: xx, output: yy }, mpAttrs);
    return Array.from(g.dataSync());
  };
  const nativeTies = await tieGrad();
  tf.unregisterKernel('MaxPoolGrad', 'wasm');
  tf.registerKernel(fresh);
  const oursTies = await tieGrad();
  await tf.setBackend('cpu');
  const cpuTies = await tieGrad();
  await tf.setBackend('wasm');
  log(`MaxPoolGrad [64,26,26,32] 2x2/2: native ${orig.toFixed(2)} ms, override ${ours.toFixed(2)} ms`);
  log(
    `tie input ${JSON.stringify(tieInput)}\n native ${JSON.stringify(nativeTies)}\n ours   ${JSON.stringify(oursTies)}\n cpu    ${JSON.stringify(cpuTies)}`,
  );

  const model = trainingModel();
  const bx = tf.tensor4d(seededUniform(64 * 784, 1, 0, 1), [64, 28, 28, 1]);
  const by = tf.oneHot(tf.tensor1d(seededIntegers(64, 2, 0, 9), 'int32'), 10);
  await model.trainOnBatch(bx, by);
  for (let i = 0; i < 3; i++) await model.trainOnBatch(bx, by);
  const profile = await tf.profile(async () => {
    for (let i = 0; i < 5; i++) await model.trainOnBatch(bx, by);
  });
  const bmmCalls = profile.kernels
    .filter((k) => k.name === 'BatchMatMul')
    .map((k) => `${JSON.stringify(k.inputShapes)} ${(k.kernelTimeMs as number).toFixed(2)}`);
  log('BatchMatMul calls (5 steps):', bmmCalls.slice(0, 8).join(' | '));
  const other = profile.kernels
    .filter((k) => ['Cast', 'Multiply', 'Sum'].includes(k.name) && (k.kernelTimeMs as number) > 0.5)
    .map((k) => `${k.name}${JSON.stringify(k.inputShapes)} ${(k.kernelTimeMs as number).toFixed(2)}`);
  log('heavy others (5 steps):', other.slice(0, 12).join(' | '));
  const byKernel = new Map<string, number>();
  for (const k of profile.kernels)
    byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + (k.kernelTimeMs as number));
  log(
    'profile batch 64 (ms per step):',
    [...byKernel]
      .sort((p, q) => q[1] - p[1])
      .slice(0, 10)
      .map(([n, t]) => `${n} ${(t / 5).toFixed(1)}`)
      .join(', '),
  );
  model.dispose();
  for (const b of [32, 64, 128])
    log(`new kernels batch ${b}: ${(await samplesPerSecond(b)).toFixed(0)} samples/s`);
}, 600_000);
