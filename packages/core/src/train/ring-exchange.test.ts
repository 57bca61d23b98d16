import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import type { GradientResult } from './batch.js';
import { type ReductionSettings, reductionFor } from './reduction.js';
import { RingExchange, type RingPlan, ringChunk } from './ring-exchange.js';

const PARAMETERS = 1_003;

/** Gradients whose float32 sums depend on the order of addition. */
function gradientOf(shard: number, samples: number): GradientResult {
  const gradient = new Float32Array(PARAMETERS);
  for (let i = 0; i < PARAMETERS; i++) gradient[i] = Math.sin(shard * 7919 + i) * 10 ** ((i % 9) - 4);
  return { gradient, lossSum: 0, correct: 0, metricSums: [], count: samples };
}

/** Runs a whole step's exchange among `plan.ranks` exchanges in memory, messages in a shuffled order. */
function reduceInRing(settings: ReductionSettings, plan: RingPlan): Float32Array[] {
  const results = plan.shards.map(({ start, end }, index) => gradientOf(index, end - start));
  const exchanges = Array.from({ length: plan.ranks }, () => new RingExchange(settings, PARAMETERS));
  exchanges.forEach((exchange, rank) => {
    const held = new Map(
      plan.shards.flatMap((shard, index) => (shard.holder === rank ? [[index, results[index]]] : [])) as [
        number,
        GradientResult,
      ][],
    );
    exchange.begin(plan, rank, held);
  });
  const pairs = exchanges.flatMap((_, from) => exchanges.map((__, to) => [from, to] as const));
  for (const [from, to] of pairs.reverse()) {
    if (from !== to) exchanges[to]?.receiveScatter(from, (exchanges[from] as RingExchange).scatterTo(to));
  }
  const chunks = exchanges.map((exchange) => exchange.reduceChunk().slice());
  for (const [from, to] of pairs) {
    if (from !== to) exchanges[to]?.receiveGather(from, chunks[from] as Float32Array);
  }
  return exchanges.map((exchange) => exchange.result().meanGradient.slice());
}

/** The same step reduced as the star does: whole vectors, in the run's reduction. */
function reduceInStar(settings: ReductionSettings, plan: RingPlan): Float32Array {
  const reduction = reductionFor(settings, PARAMETERS);
  reduction.begin({ samples: plan.samples, shards: plan.shards.map((shard, part) => ({ ...shard, part })) });
  plan.shards.forEach(({ start, end }, index) => {
    reduction.add(index, gradientOf(index, end - start));
  });
  return reduction.finish().meanGradient;
}

describe('RingExchange', () => {
  const ordered: RingPlan = {
    samples: 10,
    ranks: 3,
    shards: [
      { start: 0, end: 4, holder: 2 },
      { start: 4, end: 7, holder: 0 },
      { start: 7, end: 10, holder: 2 },
    ],
  };

  it('gives every rank the bits of the ordered shard sum over whole vectors, whoever holds which shard', () => {
    const star = reduceInStar({}, ordered);
    for (const replica of reduceInRing({}, ordered)) expect(replica).toEqual(star);
  });

  it('keeps the micro-batch tree order across chunks (shards are tree nodes, one rank holding two)', () => {
    const settings = { microBatchSize: 2 };
    const plan = reductionFor(settings, PARAMETERS).plan(14, 3);
    const holders = [1, 0, 0, 2, 2, 2];
    const ring: RingPlan = {
      samples: 14,
      ranks: 3,
      shards: plan.shards.map(({ start, end }, index) => ({ start, end, holder: holders[index] ?? 0 })),
    };
    const star = reduceInStar(settings, ring);
    const replicas = reduceInRing(settings, ring);
    for (const replica of replicas) expect(replica).toEqual(star);
    // The check has teeth: the same shards added the other way (ordered, in float64) differ in the last bits.
    expect(reduceInStar({}, ring)).not.toEqual(star);
  });

  it('works for a single rank and for a rank that holds no shard', () => {
    const single: RingPlan = { samples: 5, ranks: 1, shards: [{ start: 0, end: 5, holder: 0 }] };
    expect(reduceInRing({}, single)[0]).toEqual(reduceInStar({}, single));
    const idle: RingPlan = { ...single, ranks: 2 };
    for (const replica of reduceInRing({}, idle)) expect(replica).toEqual(reduceInStar({}, idle));
  });

  it('cuts the parameters into one contiguous chunk per rank', () => {
    expect([0, 1, 2].map((rank) => ringChunk(10, 3, rank))).toEqual([
      { start: 0, end: 4, part: 0 },
      { start: 4, end: 7, part: 1 },
      { start: 7, end: 10, part: 2 },
    ]);
  });

  describe('refuses what a peer must not send', () => {
    const twoRanks: RingPlan = {
      samples: 4,
      ranks: 2,
      shards: [
        { start: 0, end: 2, holder: 0 },
        { start: 2, end: 4, holder: 1 },
      ],
    };
    const exchange = () => {
      const own = new RingExchange({}, PARAMETERS);
      own.begin(twoRanks, 0, new Map([[0, gradientOf(0, 2)]]));
      return own;
    };
    const length = ringChunk(PARAMETERS, 2, 0).end;

    it.each([
      ['a shard the sender does not hold', { shards: [0], rows: new Float32Array(length) }, 'MALFORMED'],
      ['rows of the wrong length', { shards: [1], rows: new Float32Array(length - 1) }, 'MALFORMED'],
      ['a NaN', { shards: [1], rows: new Float32Array(length).fill(Number.NaN) }, 'NON_FINITE'],
    ])('%s', (_, rows, code) => {
      expect(() => exchange().receiveScatter(1, rows)).toThrow(
        expect.objectContaining({
          code: code === 'MALFORMED' ? ErrorCodes.MALFORMED_MESSAGE : ErrorCodes.NON_FINITE,
        }),
      );
    });

    it('a second scatter from the same rank, a gather of the wrong length, and a plan that skips samples', () => {
      const own = exchange();
      own.receiveScatter(1, { shards: [1], rows: new Float32Array(length) });
      expect(() => own.receiveScatter(1, { shards: [1], rows: new Float32Array(length) })).toThrow(
        /unexpected scatter/,
      );
      expect(() => own.receiveGather(1, new Float32Array(3))).toThrow(/mean chunk of 3 values/);
      const gap = { ...twoRanks, shards: [{ start: 0, end: 2, holder: 0 }] };
      expect(() => new RingExchange({}, PARAMETERS).begin(gap, 0, new Map([[0, gradientOf(0, 2)]]))).toThrow(
        /do not tile/,
      );
    });
  });
});
