/**
 * What checking and adding a received gradient costs, with the product's own code: the NaN/Inf check
 * every gradient gets where it arrives (assertFiniteShard) and the run's reduction (reductionFor, the
 * ordered shard sum by default), as the star's coordinator runs them for every worker's gradient and a
 * ring worker for every row of its chunk.
 */
import { performance } from 'node:perf_hooks';
import { assertFiniteShard, EMPTY_TOTALS, reductionFor } from '@callosum/core';

/**
 * Times `rounds` reductions (after `warmup`) of `shards` gradients of `parameters` float32 values each.
 *
 * @param {{ parameters: number, shards: number, rounds: number, warmup: number }} options
 * @returns {number[]} Milliseconds per byte of gradient, one per timed round.
 */
export function measureGradientFold({ parameters, shards, rounds, warmup }) {
  const reduction = reductionFor({}, parameters);
  const plan = reduction.plan(shards, shards);
  const gradients = Array.from({ length: shards }, (_, shard) =>
    Float32Array.from({ length: parameters }, (_, i) => Math.sin(i + shard)),
  );
  const msPerByte = [];
  for (let round = 0; round < warmup + rounds; round += 1) {
    const started = performance.now();
    reduction.begin(plan);
    plan.shards.forEach(({ start, end }, shard) => {
      const result = { ...EMPTY_TOTALS, count: end - start, gradient: gradients[shard] };
      assertFiniteShard(result, shard, parameters);
      reduction.add(shard, result);
    });
    reduction.finish();
    if (round >= warmup) msPerByte.push((performance.now() - started) / (shards * parameters * 4));
  }
  return msPerByte;
}
