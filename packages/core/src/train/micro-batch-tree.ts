/**
 * Deterministic reduction. A global batch is cut into micro-batches of a fixed size; each micro-batch's
 * gradient is computed on its own, and the micro-batch gradients are added in float32 along one fixed
 * binary tree. The tree depends only on the number of micro-batches and every node is rounded to
 * float32 wherever it is computed, so however the tree's nodes are split among workers the sum is the
 * same to the last bit: a run gives the same weights with 1, 3 or 8 workers, in one process, or when a
 * lost worker's shard is redone elsewhere (on the same backend).
 */

import { requireIntegerInRange } from '../data/checks.js';
import { type SampleBatch, sliceBatch } from '../data/samples.js';
import { evenShardSizes } from '../data/shards.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import type { TaskModel } from '../task/task.js';
import type { BatchTotals, GradientResult } from './batch.js';
import { addTotals } from './evaluate.js';
import { computeGradients } from './gradients.js';
import { type ReducedStep, requireSamples, scaleInto } from './reduce.js';
import { addSimd } from './vector-simd.js';

/** Micro-batches [first, first + count) of a global batch: one node of the summation tree. */
export interface TreeNode {
  readonly first: number;
  readonly count: number;
}

/** A node of the tree that one shard computes, and the worker slot (part) it is meant for. */
export interface TreeShard {
  readonly node: TreeNode;
  readonly part: number;
}

/** Micro-batches of `microBatchSize` in `samples` samples; the last one may be smaller. */
export function microBatchCount(samples: number, microBatchSize: number): number {
  requireIntegerInRange('microBatchCount: samples', samples, 0);
  requireIntegerInRange('microBatchCount: microBatchSize', microBatchSize, 1);
  return Math.ceil(samples / microBatchSize);
}

/** The samples [start, end) of a batch of `samples` that `node`'s micro-batches hold. */
export function nodeSamples(
  node: TreeNode,
  microBatchSize: number,
  samples: number,
): { start: number; end: number } {
  const start = Math.min(node.first * microBatchSize, samples);
  return { start, end: Math.min(start + node.count * microBatchSize, samples) };
}

/**
 * The node whose micro-batches a shard's samples [start, end) are, the inverse of nodeSamples: shards
 * start on a micro-batch boundary.
 */
export function shardNode({ start, end }: { start: number; end: number }, microBatchSize: number): TreeNode {
  return { first: start / microBatchSize, count: microBatchCount(end - start, microBatchSize) };
}

/** The root of the tree over `leafCount` micro-batches. */
export function treeRoot(leafCount: number): TreeNode {
  return { first: 0, count: leafCount };
}

/** A node of n > 1 micro-batches is its first ceil(n / 2) plus its last floor(n / 2). */
function children(node: TreeNode): [TreeNode, TreeNode] {
  const left = Math.ceil(node.count / 2);
  return [
    { first: node.first, count: left },
    { first: node.first + left, count: node.count - left },
  ];
}

/** The fewest tree nodes that together cover micro-batches [start, end), in order. */
export function treeNodesCovering(leafCount: number, start: number, end: number): TreeNode[] {
  requireIntegerInRange('treeNodesCovering: start', start, 0, leafCount);
  requireIntegerInRange('treeNodesCovering: end', end, start, leafCount);
  const nodes: TreeNode[] = [];
  const visit = (node: TreeNode): void => {
    const nodeEnd = node.first + node.count;
    if (nodeEnd <= start || node.first >= end) return;
    if (node.first >= start && nodeEnd <= end) {
      nodes.push(node);
      return;
    }
    for (const child of children(node)) visit(child);
  };
  if (start < end) visit(treeRoot(leafCount));
  return nodes;
}

/**
 * The shards of a step for `parts` workers: each worker's even share of micro-batches, as the tree
 * nodes that cover it (one node when the share lines up with the tree, as it does for powers of two).
 */
export function treeShards(leafCount: number, parts: number): TreeShard[] {
  let start = 0;
  return evenShardSizes(leafCount, parts).flatMap((size, part) => {
    const nodes = treeNodesCovering(leafCount, start, start + size);
    start += size;
    return nodes.map((node) => ({ node, part }));
  });
}

/**
 * Gives a node's sum directly, or undefined to have it summed from its two children. `buffer()` is
 * scratch space of the gradient's length that the result may be written into.
 */
export type KnownNode = (node: TreeNode, buffer: () => Float32Array) => GradientResult | undefined;

/**
 * Adds nodes along the tree, with scratch buffers kept for the next call (allocating and first touching
 * megabytes every step costs more than the additions). Two buffers per level: a node's left child
 * stays in one while its right child is being summed in the other.
 */
export class TreeSummation {
  private readonly buffers: Float32Array[] = [];

  constructor(readonly parameterCount: number) {}

  /**
   * The sum over `node`, writing it into `into` when it has to be computed (and `into` is given).
   * Results in this instance's buffers are valid until the next call.
   */
  sum(node: TreeNode, known: KnownNode, into?: Float32Array): GradientResult {
    return this.visit(node, known, 0, 0, into);
  }

  /** The sums of a node's two halves, for a caller that adds them itself. */
  halves(node: TreeNode, known: KnownNode): [GradientResult, GradientResult] {
    const [leftNode, rightNode] = children(node);
    return [this.visit(leftNode, known, 1, 0), this.visit(rightNode, known, 1, 1)];
  }

  private visit(
    node: TreeNode,
    known: KnownNode,
    depth: number,
    side: 0 | 1,
    into?: Float32Array,
  ): GradientResult {
    const buffer = () => into ?? this.buffer(2 * depth + side);
    const direct = known(node, buffer);
    if (direct !== undefined) return direct;
    if (node.count < 2) {
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `micro-batch ${node.first} has no gradient`);
    }
    const [leftNode, rightNode] = children(node);
    const left = this.visit(leftNode, known, depth + 1, 0);
    const right = this.visit(rightNode, known, depth + 1, 1);
    const sum = buffer();
    addSimd(sum, left.gradient, right.gradient);
    return { gradient: sum, ...addTotals(left, right) };
  }

  private buffer(index: number): Float32Array {
    let buffer = this.buffers[index];
    if (buffer === undefined) {
      buffer = new Float32Array(this.parameterCount);
      this.buffers[index] = buffer;
    }
    return buffer;
  }
}

/**
 * Gradient of the summed loss over `batch`, computed per micro-batch of `microBatchSize` samples and
 * added along the tree: what a worker computes for one tree node, and trainLocal for the whole batch.
 * Written into `into` when given.
 */
export function computeTreeGradients(
  taskModel: TaskModel,
  batch: SampleBatch,
  microBatchSize: number,
  summation: TreeSummation,
  into?: Float32Array,
): GradientResult {
  const root = treeRoot(microBatchCount(batch.count, microBatchSize));
  if (root.count === 0) return computeGradients(taskModel, batch, into);
  return summation.sum(
    root,
    (node, buffer) => {
      if (node.count !== 1) return undefined;
      const { start, end } = nodeSamples(node, microBatchSize, batch.count);
      return computeGradients(taskModel, sliceBatch(batch, start, end), buffer());
    },
    into,
  );
}

/**
 * Reduces one step whose shards are tree nodes: sums them along the tree when all have been added and
 * scales by 1 / global count. One instance serves a whole run.
 */
export class TreeGradientSum {
  private readonly summation: TreeSummation;
  private readonly mean: Float32Array;
  private readonly results = new Map<string, GradientResult>();
  private nodes: readonly TreeNode[] = [];
  private leafCount = 0;

  constructor(readonly parameterCount: number) {
    this.summation = new TreeSummation(parameterCount);
    this.mean = new Float32Array(parameterCount);
  }

  /** Starts a step over `leafCount` micro-batches whose shards compute `nodes`. */
  begin(leafCount: number, nodes: readonly TreeNode[]): void {
    const covered = nodes.reduce((sum, node) => sum + node.count, 0);
    if (leafCount < 1 || covered !== leafCount) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `tree shards cover ${covered} of ${leafCount} micro-batches`,
      );
    }
    this.leafCount = leafCount;
    this.nodes = nodes;
    this.results.clear();
  }

  /** Adds the result for `nodes[index]`; its gradient buffer must stay untouched until `reduce`. */
  add(index: number, result: GradientResult): void {
    const node = this.nodes[index];
    if (node === undefined || this.results.has(nodeKey(node))) {
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `tree shard ${index} is not awaited`);
    }
    this.results.set(nodeKey(node), result);
  }

  /**
   * The mean gradient: the root's shard scaled, or the root's two halves added, scaled and checked in
   * one pass. Every shard was checked finite on arrival, but their float32 sum could still overflow;
   * such a step is refused rather than applied.
   */
  reduce(): ReducedStep {
    if (this.results.size !== this.nodes.length) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `only ${this.results.size} of ${this.nodes.length} tree shards were added`,
      );
    }
    const root = treeRoot(this.leafCount);
    const whole = this.results.get(nodeKey(root));
    if (whole !== undefined) {
      requireSamples(whole.count);
      scaleInto(this.mean, whole.gradient, whole.count);
      return this.step(whole);
    }
    const [left, right] = this.summation.halves(root, (node) => this.results.get(nodeKey(node)));
    const totals = addTotals(left, right);
    requireSamples(totals.count);
    if (!addAndScaleInto(this.mean, left.gradient, right.gradient, totals.count)) {
      throw new CallosumError(ErrorCodes.NON_FINITE, 'the summed gradient overflows float32');
    }
    return this.step(totals);
  }

  private step({ lossSum, correct, metricSums, count }: BatchTotals): ReducedStep {
    return { meanGradient: this.mean, lossSum, correct, metricSums, count };
  }
}

/**
 * `into` = float32(a + b) / count, the same rounding as adding into a float32 node and scaling it;
 * returns whether every sum was finite (x * 0 is 0 only for a finite x).
 */
function addAndScaleInto(into: Float32Array, a: Float32Array, b: Float32Array, count: number): boolean {
  const scale = 1 / count;
  let check = 0;
  for (let i = 0; i < into.length; i++) {
    const sum = Math.fround((a[i] as number) + (b[i] as number));
    check += sum * 0;
    into[i] = sum * scale;
  }
  return check === 0;
}

/** A node's identity, e.g. as a map key. */
export function nodeKey(node: TreeNode): string {
  return `${node.first}+${node.count}`;
}
