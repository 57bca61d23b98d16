import '../backends/cpu.js';
import { describe, expect, it } from 'vitest';
import { buildModel } from '../models/index.js';
import { activationBytesPerSample, largestFittingSamples, WASM_MEMORY_BYTES } from './memory-estimate.js';

describe('memory estimate', () => {
  it('counts every activation, and a convolution patch matrix, for the cnn', () => {
    const model = buildModel({ name: 'cnn' }, { seed: 1 });
    // Between the shard that computed on wasm (6,500) and the one that ran out of memory (13,000).
    const fitting = largestFittingSamples(model, WASM_MEMORY_BYTES);
    expect(fitting).toBeLessThan(6_500);
    expect(fitting).toBeGreaterThan(3_000);
    expect(activationBytesPerSample(model)).toBeGreaterThan(
      activationBytesPerSample(buildModel({ name: 'mlp' }, { seed: 1 })),
    );
    model.dispose();
  });
});
