import {
  computeGradients,
  computeTreeGradients,
  gatherSamples,
  imageSamples,
  initBackend,
  instantiateTask,
  loadMnist,
  mnistTask,
  PROTOCOL_VERSION,
  readFlatWeights,
  type SampleSet,
  type TaskModel,
  TreeSummation,
  toSampleBatch,
  toWireTensor,
  type Welcome,
  writeFlatWeights,
} from '@callosum/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { GradientService } from './gradient-service.js';
import { mnistComputeRequest } from './test-support.js';

const MODEL = { name: 'mlp', options: { hidden: [16] } };
let train: SampleSet;

beforeAll(async () => {
  await initBackend('cpu');
  train = imageSamples((await loadMnist()).train);
});

/** MODEL as a task model, its weights from `seed`. */
function referenceModel(seed: number): TaskModel {
  return instantiateTask(mnistTask(MODEL), seed);
}

function batchOf(reference: TaskModel, indices: number[]) {
  return toSampleBatch(gatherSamples(train, indices), reference.conversion);
}

function welcome(
  parameterCount: number,
  runId = 'run-1',
  settings: { microBatchSize?: number } = {},
): Welcome {
  return {
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    workerId: 'w1',
    runId,
    model: MODEL,
    parameterCount,
    heartbeatIntervalMs: 1000,
    ...settings,
  };
}

function computeRequest(step: number, weightsVersion: number, indices: number[]) {
  return mnistComputeRequest(train, { step, weightsVersion, indices });
}

/** A service welcomed into a run of MODEL, holding zero weights of `weightsVersion`. */
function serviceHoldingWeights(weightsVersion: number) {
  const parameterCount = referenceModel(0).layout.totalSize;
  const service = new GradientService();
  service.configure(welcome(parameterCount));
  service.receiveWeights(weightsVersion, new Float32Array(parameterCount));
  return { service, parameterCount };
}

describe('GradientService', () => {
  it('computes exactly what computeGradients computes with the weights it was sent', () => {
    const reference = referenceModel(4);
    const { layout } = reference;
    const weights = readFlatWeights(reference.model, layout).map((value) => value * 0.5);
    writeFlatWeights(reference.model, weights, layout);
    const indices = [5, 9, 100, 7];
    const expected = computeGradients(reference, batchOf(reference, indices));

    const service = new GradientService();
    service.configure(welcome(layout.totalSize));
    service.receiveWeights(3, weights);
    const { result, timings } = service.computeGradient(computeRequest(0, 3, indices));
    expect(result.gradient).toEqual(expected.gradient);
    expect(result.lossSum).toBe(expected.lossSum);
    expect(result.count).toBe(4);
    expect(timings.computeMs).toBeGreaterThan(0);
    service.dispose();
    reference.model.dispose();
  });

  it('computes a micro-batched shard (size from the welcome) as computeTreeGradients does, into the frame memory it is given', () => {
    const reference = referenceModel(4);
    const { layout } = reference;
    const weights = readFlatWeights(reference.model, layout);
    const indices = [5, 9, 100, 7, 11, 12, 13];
    const summation = new TreeSummation(layout.totalSize);
    const expected = computeTreeGradients(reference, batchOf(reference, indices), 2, summation);

    const service = new GradientService();
    service.configure(welcome(layout.totalSize, 'run-1', { microBatchSize: 2 }));
    service.receiveWeights(0, weights);
    const frame = new Float32Array(layout.totalSize);
    const { result } = service.computeGradient(computeRequest(0, 0, indices), frame);
    expect(result.gradient).toBe(frame);
    expect(Array.from(frame)).toEqual(Array.from(expected.gradient));
    expect(result).toMatchObject({ lossSum: expected.lossSum, correct: expected.correct, count: 7 });
    // Computed in one piece (a run without micro-batches), the same shard rounds differently: the
    // micro-batches were really used.
    service.configure(welcome(layout.totalSize, 'run-2'));
    service.receiveWeights(0, weights);
    const whole = service.computeGradient(computeRequest(0, 0, indices)).result.gradient;
    expect(Array.from(whole)).not.toEqual(Array.from(frame));
    service.dispose();
    reference.model.dispose();
  });

  it('refuses a request for weights it does not hold, and forgets weights on a new welcome', () => {
    const { service, parameterCount } = serviceHoldingWeights(1);
    expect(() => service.computeGradient(computeRequest(0, 2, [1]))).toThrow(
      /needs weights version 2, this worker has 1/,
    );
    service.configure(welcome(parameterCount, 'run-2'));
    expect(() => service.computeGradient(computeRequest(0, 1, [1]))).toThrow(/this worker has none/);
    service.dispose();
  });

  it('refuses a welcome whose parameter count does not match the model it builds', () => {
    const service = new GradientService();
    expect(() => service.configure(welcome(12))).toThrow(/12/);
    service.dispose();
  });

  it('refuses features whose size does not match the model input, and labels for other samples', () => {
    const { service } = serviceHoldingWeights(0);
    const request = computeRequest(0, 0, [1, 2]);
    const wrong = { ...request, features: toWireTensor(new Uint8Array(2 * 27 * 28), [2, 27, 28]) };
    expect(() => service.computeGradient(wrong)).toThrow(/needs 1568 feature values.*got 1512/);
    const moreLabels = { ...request, labels: toWireTensor(new Uint8Array(3), [3]) };
    expect(() => service.computeGradient(moreLabels)).toThrow(/must both start with the sample count/);
    service.dispose();
  });

  it('refuses a run of a task module when it has no task, and a built-in run when it has one', () => {
    const service = new GradientService();
    expect(() => service.configure({ ...welcome(1), model: undefined, task: { name: 'spam' } })).toThrow(
      /trains task spam; start this worker with --task/,
    );
    service.dispose();
    const withTask = new GradientService(mnistTask(MODEL));
    expect(() => withTask.configure(welcome(1))).toThrow(
      /built-in model mlp, this worker was started with task mnist\/mlp/,
    );
    withTask.dispose();
  });
});
