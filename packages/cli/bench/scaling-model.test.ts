import { describe, expect, it } from 'vitest';
import {
  coreSharing,
  fitCompute,
  fitLine,
  fitPerByte,
  predictStep,
  relativeError,
} from './scaling-model.mjs';

/** Round numbers, so that every expected figure below can be worked out by hand. */
const COSTS = {
  computeMsPerSample: 0.5,
  computeMsPerShard: 2,
  latencyMs: 0.1,
  messageMs: 0.01,
  msPerByte: { coordinator: 1e-6, worker: 0.5e-6, peer: 2e-6 },
  foldMsPerByte: 5e-7,
  prepareMsPerStep: 0.5,
  prepareMsPerSample: 0.01,
  optimizerMsPerParameter: 1e-6,
  sampleBytes: 1000,
};
/** 1e6 parameters: 4e6 bytes of float32; a batch of 128 samples: 128,000 bytes of data. */
const SETUP = { samplesPerStep: 128, parameters: 1e6, threads: 1, cores: 2, wireMsPerByte: 0 };

describe('predictStep', () => {
  it('star: the coordinator moves 2 × workers × the model and the data, folds every gradient, runs Adam', () => {
    const step = predictStep({ ...SETUP, topology: 'star', workers: 2 }, COSTS);
    expect(step.busiestLinkBytes).toBe(2 * 2 * 4e6 + 128_000);
    expect(step.computeMs).toBeCloseTo(2 + 0.5 * 64); // a core each: no sharing
    // coordinator 16,128,000 bytes × 1e-6 + the slowest worker's 8e6 bytes × 0.5e-6 + 3 messages per worker × 0.01
    expect(step.transferMs).toBeCloseTo(16.128 + 4 + 0.06);
    // cutting 128 samples + folding 2 gradients of 4e6 bytes + Adam over 1e6 parameters
    expect(step.serialMs).toBeCloseTo(0.5 + 1.28 + 4 + 1);
    expect(step.latencyMs).toBeCloseTo(2 * 0.1);
    expect(step.stepMs).toBeCloseTo(61.168);
    expect(step.samplesPerSecond).toBeCloseTo(128_000 / 61.168);
  });

  it('ring: each worker moves 2 (N−1)/N of the model; 4 workers on 2 cores fold and update twice as slowly', () => {
    const step = predictStep({ ...SETUP, topology: 'ring', workers: 4 }, COSTS);
    expect(step.busiestLinkBytes).toBe(6e6);
    expect(step.computeMs).toBeCloseTo(2 * (2 + 0.5 * 32));
    // coordinator: data 0.128 + 5 messages per worker 0.2; each worker: peer bytes 6e6 × 2e-6, 12 peer
    // messages 0.12, and × 2 for sharing: folding its chunk's rows (the model's bytes) 2, Adam 1
    expect(step.transferMs).toBeCloseTo(0.328 + 12 + 0.12 + 2 * (2 + 1));
    expect(step.serialMs).toBeCloseTo(0.5 + 1.28);
    expect(step.latencyMs).toBeCloseTo(6 * 0.1);
    expect(step.stepMs).toBeCloseTo(68.948 - 12.12);
  });

  it('a byte costs the slower of the wire and the software', () => {
    const onLoopback = predictStep({ ...SETUP, topology: 'star', workers: 2, cores: Infinity }, COSTS);
    const fastWire = predictStep(
      { ...SETUP, topology: 'star', workers: 2, cores: Infinity, wireMsPerByte: 0.5e-6 },
      COSTS,
    );
    const slowWire = predictStep(
      { ...SETUP, topology: 'star', workers: 2, cores: Infinity, wireMsPerByte: 3e-6 },
      COSTS,
    );
    expect(fastWire.stepMs).toBeCloseTo(onLoopback.stepMs);
    // Both links now wait on the wire: the coordinator's 16,128,000 bytes and the worker's 8e6.
    expect(slowWire.transferMs - onLoopback.transferMs).toBeCloseTo(16_128_000 * 2e-6 + 8e6 * 2.5e-6);
  });

  it("takes a run's measured compute, as measured, in place of the modelled one, and nothing else", () => {
    const modelled = predictStep({ ...SETUP, topology: 'ring', workers: 4 }, COSTS);
    const measured = predictStep({ ...SETUP, topology: 'ring', workers: 4, measuredComputeMs: 50 }, COSTS);
    expect(measured.computeMs).toBe(50);
    expect(measured.stepMs - modelled.stepMs).toBeCloseTo(50 - modelled.computeMs);
    expect(measured.transferMs).toBe(modelled.transferMs);
  });

  it('one worker in the ring sends nothing to peers', () => {
    const step = predictStep({ ...SETUP, topology: 'ring', workers: 1 }, COSTS);
    expect(step.busiestLinkBytes).toBe(128_000);
    expect(step.transferMs).toBeCloseTo(0.128 + 0.05 + 2 + 1);
  });
});

describe('coreSharing', () => {
  it('is 1 while every thread has a core, then grows with the threads per core', () => {
    expect(coreSharing({ workers: 2, threads: 1, cores: 2 })).toBe(1);
    expect(coreSharing({ workers: 3, threads: 1, cores: 2 })).toBe(1.5);
    expect(coreSharing({ workers: 2, threads: 2, cores: 2 })).toBe(2);
    expect(coreSharing({ workers: 128, threads: 1, cores: Infinity })).toBe(1);
  });
});

describe('fits', () => {
  it('fitLine recovers a line through noisy points by least squares', () => {
    const { intercept, slope } = fitLine([
      { x: 0, y: 1.1 },
      { x: 1, y: 2.9 },
      { x: 2, y: 5.1 },
      { x: 3, y: 6.9 },
    ]);
    expect(slope).toBeCloseTo(1.96);
    expect(intercept).toBeCloseTo(1.06);
  });

  it('fitLine refuses points at a single x', () => {
    expect(() =>
      fitLine([
        { x: 64, y: 1 },
        { x: 64, y: 2 },
      ]),
    ).toThrow(/two or more distinct x/);
  });

  it('fitCompute: a fixed cost per shard plus a cost per sample', () => {
    const compute = fitCompute([
      { samples: 128, computeMs: 3 + 128 * 0.4 },
      { samples: 64, computeMs: 3 + 64 * 0.4 },
    ]);
    expect(compute.computeMsPerSample).toBeCloseTo(0.4);
    expect(compute.computeMsPerShard).toBeCloseTo(3);
  });

  it('fitPerByte recovers the costs per byte that produced the step times, with every other cost given', () => {
    const truth = { ...COSTS, msPerByte: { coordinator: 3e-6, worker: 7e-6, peer: 5e-6 } };
    const measuredOf = (topology: 'star' | 'ring') =>
      [1, 2, 3, 4].map((workers) => {
        const setup = { ...SETUP, topology, workers };
        return { setup, stepMs: predictStep(setup, truth).stepMs };
      });
    const star = fitPerByte(['coordinator', 'worker'], measuredOf('star'), COSTS);
    expect(star.coordinator).toBeCloseTo(3e-6, 12);
    expect(star.worker).toBeCloseTo(7e-6, 12);
    const ring = fitPerByte(['peer'], measuredOf('ring'), truth);
    expect(ring.peer).toBeCloseTo(5e-6, 12);
  });

  it('fitPerByte sets a cost that would come out negative to 0 and fits the others alone', () => {
    // Steps that grow less with the workers than the worker's end alone explains: the coordinator's
    // cost would be negative.
    const measured = [1, 2, 3, 4].map((workers) => {
      const setup = { ...SETUP, topology: 'star' as const, workers };
      const noBytes = { ...COSTS, msPerByte: { coordinator: 0, worker: 0, peer: 0 } };
      return { setup, stepMs: predictStep(setup, noBytes).stepMs + 10 - workers };
    });
    const fitted = fitPerByte(['coordinator', 'worker'], measured, COSTS);
    expect(fitted.coordinator).toBe(0);
    // Through the origin over x = 8e6 bytes at every count: the mean of 9, 8, 7, 6 ms ÷ 8e6.
    expect(fitted.worker).toBeCloseTo(7.5 / 8e6, 12);
  });

  it('relativeError is signed: above the measurement is positive', () => {
    expect(relativeError(115, 100)).toBeCloseTo(0.15);
    expect(relativeError(85, 100)).toBeCloseTo(-0.15);
  });
});
