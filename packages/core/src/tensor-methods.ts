import * as tf from '@tensorflow/tfjs-core';

// The methods' types, as tfjs-core declares them, for every program that imports @callosum/core: this
// line stays in the emitted .d.ts and is erased from the JavaScript, which registers the methods below.
export type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';

/**
 * Tensor methods such as `x.mean()`, `x.div(255)` and `x.flatten()`, which `@tensorflow/tfjs` adds to
 * every tensor and tfjs-core's Node bundle leaves out. Without them a task written as for tfjs breaks,
 * and so do layers whose own code calls them: the orthogonal initializer of LSTM and GRU calls
 * `flatten`. A method already there (another copy of tfjs added it) is left as it is.
 */

/** Methods that call the op of the same name with the tensor as its first argument. */
const SAME_NAME_OPS = [
  'abs',
  'acos',
  'acosh',
  'add',
  'all',
  'any',
  'argMax',
  'argMin',
  'asin',
  'asinh',
  'atan',
  'atan2',
  'atanh',
  'avgPool',
  'batchToSpaceND',
  'batchNorm',
  'broadcastTo',
  'cast',
  'ceil',
  'clipByValue',
  'conv1d',
  'conv2d',
  'conv2dTranspose',
  'cos',
  'cosh',
  'cumprod',
  'cumsum',
  'depthToSpace',
  'depthwiseConv2d',
  'dilation2d',
  'div',
  'divNoNan',
  'dot',
  'elu',
  'equal',
  'erf',
  'euclideanNorm',
  'exp',
  'expandDims',
  'expm1',
  'fft',
  'floor',
  'floorDiv',
  'gather',
  'greater',
  'greaterEqual',
  'ifft',
  'irfft',
  'isFinite',
  'isInf',
  'isNaN',
  'leakyRelu',
  'less',
  'lessEqual',
  'localResponseNormalization',
  'log',
  'log1p',
  'logSigmoid',
  'logSoftmax',
  'logSumExp',
  'logicalAnd',
  'logicalNot',
  'logicalOr',
  'logicalXor',
  'matMul',
  'max',
  'maxPool',
  'maximum',
  'mean',
  'min',
  'minimum',
  'mirrorPad',
  'mod',
  'mul',
  'neg',
  'norm',
  'notEqual',
  'oneHot',
  'onesLike',
  'pad',
  'pool',
  'pow',
  'prelu',
  'prod',
  'reciprocal',
  'relu',
  'relu6',
  'reshape',
  'resizeBilinear',
  'resizeNearestNeighbor',
  'reverse',
  'rfft',
  'round',
  'rsqrt',
  'selu',
  'separableConv2d',
  'sigmoid',
  'sign',
  'sin',
  'sinh',
  'slice',
  'softmax',
  'softplus',
  'spaceToBatchND',
  'split',
  'sqrt',
  'square',
  'squaredDifference',
  'squeeze',
  'step',
  'stridedSlice',
  'sub',
  'sum',
  'tan',
  'tanh',
  'tile',
  'topk',
  'transpose',
  'unique',
  'unsortedSegmentSum',
  'unstack',
  'zerosLike',
] as const;

type Method = (this: tf.Tensor, ...args: never[]) => unknown;
const ops = tf as unknown as Record<string, (...args: unknown[]) => unknown>;

/** Methods that reshape or cast, or take the tensor somewhere other than first. */
const OTHER_METHODS: Record<string, Method> = {
  flatten() {
    return tf.reshape(this, [this.size]);
  },
  as1D() {
    return tf.reshape(this, [this.size]);
  },
  as2D(rows: number, columns: number) {
    return tf.reshape(this, [rows, columns]);
  },
  as3D(rows: number, columns: number, depth: number) {
    return tf.reshape(this, [rows, columns, depth]);
  },
  as4D(rows: number, columns: number, depth: number, depth2: number) {
    return tf.reshape(this, [rows, columns, depth, depth2]);
  },
  as5D(rows: number, columns: number, depth: number, depth2: number, depth3: number) {
    return tf.reshape(this, [rows, columns, depth, depth2, depth3]);
  },
  asScalar() {
    tf.util.assert(this.size === 1, () => 'The array must have only 1 element.');
    return tf.reshape(this, []);
  },
  reshapeAs(other: tf.Tensor) {
    return tf.reshape(this, other.shape);
  },
  asType(dtype: tf.DataType) {
    return tf.cast(this, dtype);
  },
  toBool() {
    return tf.cast(this, 'bool');
  },
  toFloat() {
    return tf.cast(this, 'float32');
  },
  toInt() {
    return tf.cast(this, 'int32');
  },
  concat(others: tf.Tensor | tf.Tensor[], axis?: number) {
    return tf.concat([this, ...(others instanceof tf.Tensor ? [others] : others)], axis);
  },
  stack(others: tf.Tensor | tf.Tensor[], axis?: number) {
    return tf.stack([this, ...(others instanceof tf.Tensor ? [others] : others)], axis);
  },
  where(condition: tf.Tensor, other: tf.Tensor) {
    return tf.where(condition, this, other);
  },
};

const prototype = tf.Tensor.prototype as unknown as Record<string, Method>;
const methods: [string, Method][] = [
  ...SAME_NAME_OPS.map((name): [string, Method] => [
    name,
    function (this: tf.Tensor, ...args: unknown[]) {
      return (ops[name] as (...all: unknown[]) => unknown)(this, ...args);
    },
  ]),
  ...Object.entries(OTHER_METHODS),
];
for (const [name, method] of methods) {
  if (prototype[name] !== undefined) continue;
  prototype[name] = function (this: tf.Tensor, ...args: never[]) {
    this.throwIfDisposed();
    return method.apply(this, args);
  };
}
