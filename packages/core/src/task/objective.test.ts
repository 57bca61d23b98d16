import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { callosumError } from '../optim/test-support.js';
import { parameterLayout } from '../params/layout.js';
import * as tf from '../tf.js';
import { computeGradients } from '../train/gradients.js';
import { type LossSpec, Objective } from './objective.js';
import type { TaskModel } from './task.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const SAMPLES = 10;
const FEATURES = 4;

/** Deterministic values in [-scale, scale): the same on every run. */
function values(length: number, seed: number, scale = 1): number[] {
  let state = seed;
  return Array.from({ length }, () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return (state / 2 ** 32 - 0.5) * 2 * scale;
  });
}

function denseModel(
  units: number,
  activation: 'softmax' | 'sigmoid' | 'linear',
  seed: number,
): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [FEATURES],
        units: 6,
        activation: 'tanh',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.dense({
        units,
        activation,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
    ],
  });
}

const features = () => tf.tensor2d(values(SAMPLES * FEATURES, 11, 2), [SAMPLES, FEATURES]);
const classIndices = (classes: number) => Array.from({ length: SAMPLES }, (_, i) => (i * 7 + 3) % classes);

/** Reads the scalars of Objective's sums: loss, then each of `metrics` in order (accuracy as `correct`). */
function objectiveSums(sums: ReturnType<Objective['evaluationSums']>, metrics: readonly LossSpec[]) {
  let next = 0;
  const read = (scalar: tf.Tensor | undefined) => (scalar as tf.Tensor).dataSync()[0] as number;
  return [
    read(sums.loss),
    ...metrics.map((metric) =>
      metric === 'accuracy' || metric === 'acc' ? read(sums.correct) : read(sums.metrics[next++]),
    ),
  ];
}

/** What plain tfjs reports for the model (means over the samples): [loss, ...metrics]. */
function tfjsEvaluate(
  model: tf.LayersModel,
  loss: string,
  metrics: readonly LossSpec[],
  xs: tf.Tensor,
  ys: tf.Tensor,
): number[] {
  // tfjs-layers takes the same metric functions: (labels, predictions) => one value per sample.
  model.compile({ optimizer: 'sgd', loss, metrics: [...metrics] as string[] });
  // tfjs's sparse cross-entropy floors its labels, which it takes as float32 only.
  const labels = tf.cast(ys, 'float32');
  const result = model.evaluate(xs, labels, { batchSize: SAMPLES }) as tf.Scalar | tf.Scalar[];
  const scalars = Array.isArray(result) ? result : [result];
  const numbers = scalars.map((scalar) => scalar.dataSync()[0] as number);
  tf.dispose([...scalars, labels]);
  return numbers;
}

function expectRelative(actual: number, expected: number, tolerance = 1e-5): void {
  const scale = Math.max(Math.abs(expected), 1e-3);
  expect(Math.abs(actual - expected) / scale, `${actual} against ${expected}`).toBeLessThanOrEqual(tolerance);
}

/** A custom metric as Keras takes one: the mean cubed error of each sample. */
function meanCubedError(labels: tf.Tensor, predictions: tf.Tensor): tf.Tensor {
  return tf.mean(tf.pow(tf.sub(predictions, labels), 3), -1);
}

interface LossCase {
  readonly loss: string;
  readonly units: number;
  readonly activation: 'softmax' | 'sigmoid' | 'linear';
  readonly metrics: readonly LossSpec[];
  readonly labels: () => tf.Tensor;
}

const CASES: LossCase[] = [
  {
    loss: 'sparseCategoricalCrossentropy',
    units: 3,
    activation: 'softmax',
    metrics: ['accuracy', 'sparseCategoricalCrossentropy'],
    labels: () => tf.tensor1d(classIndices(3), 'int32'),
  },
  {
    loss: 'categoricalCrossentropy',
    units: 3,
    activation: 'softmax',
    metrics: ['accuracy', 'mse'],
    labels: () => tf.cast(tf.oneHot(tf.tensor1d(classIndices(3), 'int32'), 3), 'float32'),
  },
  {
    loss: 'binaryCrossentropy',
    units: 1,
    activation: 'sigmoid',
    metrics: ['accuracy', 'mae'],
    labels: () => tf.tensor2d(classIndices(2), [SAMPLES, 1]),
  },
  {
    loss: 'binaryCrossentropy',
    units: 3,
    activation: 'sigmoid',
    metrics: ['acc'],
    labels: () =>
      tf.tensor2d(
        values(SAMPLES * 3, 5).map((v) => (v > 0 ? 1 : 0)),
        [SAMPLES, 3],
      ),
  },
  {
    loss: 'meanSquaredError',
    units: 2,
    activation: 'linear',
    metrics: ['mse', 'mae', meanCubedError],
    labels: () => tf.tensor2d(values(SAMPLES * 2, 7, 3), [SAMPLES, 2]),
  },
  {
    loss: 'meanAbsoluteError',
    units: 2,
    activation: 'linear',
    metrics: ['mse', meanCubedError],
    labels: () => tf.tensor2d(values(SAMPLES * 2, 8, 3), [SAMPLES, 2]),
  },
  {
    // One output: 'accuracy' is binary accuracy, whatever the loss.
    loss: 'meanSquaredError',
    units: 1,
    activation: 'sigmoid',
    metrics: ['accuracy'],
    labels: () => tf.tensor2d(classIndices(2), [SAMPLES, 1]),
  },
];

describe('Objective.evaluationSums', () => {
  it.each(
    CASES.map((c) => [`${c.loss}, ${c.units} outputs, ${c.metrics.map(String).length} metrics`, c] as const),
  )('%s: the sums of what plain tfjs evaluate reports', (_, { loss, units, activation, metrics, labels }) => {
    const model = denseModel(units, activation, 3);
    const xs = features();
    const ys = labels();
    const objective = new Objective(model, loss, metrics);
    expect(objective.measuresAccuracy).toBe(metrics.some((m) => m === 'accuracy' || m === 'acc'));
    const ours = tf.tidy(() => objectiveSums(objective.evaluationSums(model, xs, ys), metrics));
    const reference = tfjsEvaluate(model, loss, metrics, xs, ys);
    expect(ours).toHaveLength(reference.length);
    for (const [index, sum] of ours.entries()) expectRelative(sum, (reference[index] as number) * SAMPLES);
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('computes huberLoss (delta 1) as the hand formula, on errors both below and above 1', () => {
    const model = denseModel(2, 'linear', 4);
    const xs = features();
    const targets = values(SAMPLES * 2, 9, 3);
    const ys = tf.tensor2d(targets, [SAMPLES, 2]);
    const predictions = (model.predict(xs) as tf.Tensor).dataSync();
    let expected = 0;
    let small = 0;
    let large = 0;
    for (let sample = 0; sample < SAMPLES; sample++) {
      let sampleLoss = 0;
      for (let unit = 0; unit < 2; unit++) {
        const error = Math.abs(
          (predictions[sample * 2 + unit] as number) - (targets[sample * 2 + unit] as number),
        );
        if (error <= 1) small += 1;
        else large += 1;
        sampleLoss += error <= 1 ? 0.5 * error * error : error - 0.5;
      }
      expected += sampleLoss / 2;
    }
    expect(small).toBeGreaterThan(0);
    expect(large).toBeGreaterThan(0);
    const objective = new Objective(model, 'huberLoss');
    const loss = tf.tidy(() => objective.evaluationSums(model, xs, ys).loss.dataSync()[0] as number);
    expectRelative(loss, expected);
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('names custom metrics by their function, and numbers anonymous ones', () => {
    const model = denseModel(2, 'linear', 4);
    const objective = new Objective(model, 'meanSquaredError', [
      meanCubedError,
      'mae',
      (y, p) => tf.abs(tf.sum(tf.sub(p, y), -1)),
    ]);
    expect(objective.metricNames).toEqual(['meanCubedError', 'mae', 'metric2']);
    expect(objective.lossName).toBe('meanSquaredError');
    expect(objective.labelDtype).toBe('float32');
    expect(new Objective(model, 'sparseCategoricalCrossentropy').labelDtype).toBe('int32');
    model.dispose();
  });

  it('refuses a loss function that returns a scalar, naming the shape it gave', () => {
    const model = denseModel(2, 'linear', 4);
    const xs = features();
    const ys = tf.tensor2d(values(SAMPLES * 2, 7), [SAMPLES, 2]);
    const scalarLoss = (labels: tf.Tensor, predictions: tf.Tensor) =>
      tf.mean(tf.square(tf.sub(predictions, labels)));
    const objective = new Objective(model, scalarLoss);
    expect(objective.lossName).toBe('scalarLoss');
    expect(() => tf.tidy(() => void objective.evaluationSums(model, xs, ys))).toThrow(
      callosumError(
        'TASK_INVALID',
        'loss scalarLoss must give one value per sample (shape [10]), gave shape []',
      ),
    );
    const perElement = new Objective(model, 'meanSquaredError', [(y, p) => tf.sub(p, y)]);
    expect(() => tf.tidy(() => void perElement.evaluationSums(model, xs, ys))).toThrow(
      callosumError(
        'TASK_INVALID',
        'the metric function at metrics[0] must give one value per sample (shape [10]), gave shape [10, 2]',
      ),
    );
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('calls an anonymous loss "the loss function", also one written inline at a `loss` key, and names the task', () => {
    const model = denseModel(2, 'linear', 4);
    const xs = features();
    const ys = tf.tensor2d(values(SAMPLES * 2, 7), [SAMPLES, 2]);
    const task = {
      loss: (labels: tf.Tensor, predictions: tf.Tensor) => tf.mean(tf.sub(predictions, labels)),
    };
    expect(task.loss.name).toBe('loss');
    const anonymous = [(labels: tf.Tensor, predictions: tf.Tensor) => tf.mean(tf.sub(predictions, labels))];
    for (const loss of [task.loss, anonymous[0]!]) {
      const objective = new Objective(model, loss, [], 'spam');
      expect(() => tf.tidy(() => void objective.evaluationSums(model, xs, ys))).toThrow(
        callosumError(
          'TASK_INVALID',
          'task spam: the loss function must give one value per sample (shape [10]), gave shape []',
        ),
      );
      expect(objective.namedFunctions[0]?.shown).toBe('the loss function');
    }
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('names the metric and the task when a metric function throws, keeping what it threw as the cause', () => {
    const model = denseModel(2, 'linear', 4);
    const xs = features();
    const ys = tf.tensor2d(values(SAMPLES * 2, 7), [SAMPLES, 2]);
    const oops = new Error('oops');
    const failing = (): tf.Tensor => {
      throw oops;
    };
    const cases: [LossSpec[], string][] = [
      [[failing], 'metric failing'],
      [['accuracy', 'mae', () => failing()], 'the metric function at metrics[2]'],
    ];
    for (const [metrics, shown] of cases) {
      const objective = new Objective(model, 'meanSquaredError', metrics, 'spam');
      let caught: unknown;
      try {
        tf.tidy(() => void objective.evaluationSums(model, xs, ys));
      } catch (error) {
        caught = error;
      }
      expect(caught).toEqual(callosumError('TASK_INVALID', `task spam: ${shown} threw: oops`));
      expect((caught as Error).cause).toBe(oops);
    }
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('refuses unknown loss and metric names, listing the known ones', () => {
    const model = denseModel(2, 'linear', 4);
    expect(() => new Objective(model, 'meanSquaredErrors')).toThrow(
      callosumError('INVALID_ARGUMENT', 'unknown loss "meanSquaredErrors"', 'meanSquaredError', 'huberLoss'),
    );
    expect(() => new Objective(model, 'meanSquaredError', ['rmse'])).toThrow(
      callosumError('INVALID_ARGUMENT', 'unknown metric "rmse"', 'accuracy', 'mse'),
    );
    // A name a case or a typo away is suggested; one far from every name is not.
    expect(() => new Objective(model, 'sparseCategoricalCrossEntropy')).toThrow(
      callosumError(
        'INVALID_ARGUMENT',
        'unknown loss "sparseCategoricalCrossEntropy" (did you mean "sparseCategoricalCrossentropy"?)',
      ),
    );
    expect(() => new Objective(model, 'meanSquaredError', ['maee'])).toThrow(
      callosumError('INVALID_ARGUMENT', 'unknown metric "maee" (did you mean "mae"?)'),
    );
    expect(() => new Objective(model, 'crossEntropyOfSomeKind')).toThrow(
      /unknown loss "crossEntropyOfSomeKind"; known/,
    );
    expect(() => new Objective(model, 'constructor')).toThrow(/unknown loss "constructor"; known/);
    model.dispose();
  });

  it("suggests the tfjs name for Keras's short names, which are not losses in tfjs either", () => {
    const model = denseModel(2, 'linear', 4);
    const refusal = (kind: string, name: string, hint: string) =>
      callosumError('INVALID_ARGUMENT', `unknown ${kind} "${name}" ${hint}; known: `);
    expect(() => new Objective(model, 'mse')).toThrow(
      refusal('loss', 'mse', '(did you mean "meanSquaredError"?)'),
    );
    expect(() => new Objective(model, 'MAE')).toThrow(
      refusal('loss', 'MAE', '(did you mean "meanAbsoluteError"?)'),
    );
    expect(() => new Objective(model, 'bce')).toThrow(
      refusal('loss', 'bce', '(did you mean "binaryCrossentropy"?)'),
    );
    expect(() => new Objective(model, 'mape')).toThrow(
      refusal(
        'loss',
        'mape',
        '("mape" stands for meanAbsolutePercentageError, which Callosum does not have)',
      ),
    );
    expect(() => new Objective(model, 'msle')).toThrow(
      refusal(
        'loss',
        'msle',
        '("msle" stands for meanSquaredLogarithmicError, which Callosum does not have)',
      ),
    );
    // As metrics, tfjs takes mse and mae, and so does Callosum: another case is only a case away.
    expect(new Objective(model, 'meanSquaredError', ['mse', 'mae']).metricNames).toEqual(['mse', 'mae']);
    expect(() => new Objective(model, 'meanSquaredError', ['MSE'])).toThrow(
      refusal('metric', 'MSE', '(did you mean "mse"?)'),
    );
    expect(() => new Objective(model, 'meanSquaredError', ['bce'])).toThrow(
      refusal('metric', 'bce', '(did you mean "binaryCrossentropy"?)'),
    );
    model.dispose();
  });

  it('takes labels of shape [n] for an output of shape [n, 1] (MSE), in training and in evaluation', () => {
    const model = denseModel(1, 'linear', 5);
    const xs = features();
    const targets = values(SAMPLES, 12, 2);
    const flat = tf.tensor1d(targets);
    const column = tf.tensor2d(targets, [SAMPLES, 1]);
    const objective = new Objective(model, 'meanSquaredError', ['mae']);
    const sums = (labels: tf.Tensor, training: boolean) =>
      tf.tidy(() =>
        objectiveSums(
          training ? objective.trainingSums(model, xs, labels) : objective.evaluationSums(model, xs, labels),
          ['mae'],
        ),
      );
    const reference = tfjsEvaluate(model, 'meanSquaredError', ['mae'], xs, column).map(
      (mean) => mean * SAMPLES,
    );
    for (const training of [false, true]) {
      const fromFlat = sums(flat, training);
      expect(fromFlat).toEqual(sums(column, training));
      for (const [index, sum] of fromFlat.entries()) expectRelative(sum, reference[index] as number);
    }
    const wrong = tf.tensor1d(values(SAMPLES + 1, 3));
    expect(() => tf.tidy(() => void objective.evaluationSums(model, xs, wrong))).toThrow(
      callosumError('SHAPE_MISMATCH', 'labels of shape [11] do not fit the model', 'output [10, 1]'),
    );
    tf.dispose([xs, flat, column, wrong]);
    model.dispose();
  });
});

/** input [4] → dense 6 tanh → dense 3 softmax, as a Sequential or a functional model (with a skip branch). */
function softmaxModel(kind: 'sequential' | 'functional', seed: number, scale = 1): tf.LayersModel {
  const initializer = (offset: number) =>
    tf.initializers.randomUniform({ minval: -scale, maxval: scale, seed: seed + offset });
  if (kind === 'sequential') {
    return tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [FEATURES],
          units: 6,
          activation: 'tanh',
          kernelInitializer: initializer(0),
        }),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: initializer(1) }),
      ],
    });
  }
  const input = tf.input({ shape: [FEATURES] });
  const hidden = tf.layers
    .dense({ units: 6, activation: 'tanh', kernelInitializer: initializer(0) })
    .apply(input) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate().apply([hidden, input]) as tf.SymbolicTensor;
  const output = tf.layers
    .dense({ units: 3, activation: 'softmax', kernelInitializer: initializer(1) })
    .apply(joined) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output });
}

/** The model's logits (its output layer's input times the head's kernel plus bias), in float64. */
function logitsOf(model: tf.LayersModel, xs: tf.Tensor): number[][] {
  // A Sequential model keeps its output layers on an inner model: its last layer is the head.
  const head = (model.outputLayers?.[0] ?? model.layers.at(-1)) as tf.layers.Layer;
  const body = tf.model({ inputs: model.inputs, outputs: head.input as tf.SymbolicTensor });
  const hidden = (body.predict(xs) as tf.Tensor).arraySync() as number[][];
  const [kernel, bias] = head.getWeights().map((weight) => weight.arraySync()) as [number[][], number[]];
  return hidden.map((row) =>
    bias.map((b, unit) => row.reduce((sum, value, k) => sum + value * (kernel[k]?.[unit] as number), b)),
  );
}

function negativeLogSoftmax(logits: readonly number[], label: number): number {
  const max = Math.max(...logits);
  const logSumExp = max + Math.log(logits.reduce((sum, value) => sum + Math.exp(value - max), 0));
  return logSumExp - (logits[label] as number);
}

describe('cross-entropy on a softmax head, from the logits', () => {
  it.each(['sequential', 'functional'] as const)(
    'a %s model: the training loss is the sum of -log softmax(label), stable where the probabilities saturate',
    (kind) => {
      const labels = classIndices(3);
      const ys = tf.tensor1d(labels, 'int32');
      const xs = features();
      for (const scale of [1, 60]) {
        const model = softmaxModel(kind, 21, scale);
        const objective = new Objective(model, 'sparseCategoricalCrossentropy', ['accuracy']);
        const logits = logitsOf(model, xs);
        const expected = logits.reduce(
          (sum, row, i) => sum + negativeLogSoftmax(row, labels[i] as number),
          0,
        );
        const expectedCorrect = logits.filter((row, i) => row.indexOf(Math.max(...row)) === labels[i]).length;
        const { loss, correct } = tf.tidy(() => {
          const sums = objective.trainingSums(model, xs, ys);
          return { loss: sums.loss.dataSync()[0] as number, correct: sums.correct?.dataSync()[0] };
        });
        expectRelative(loss, expected);
        expect(correct).toBe(expectedCorrect);
        if (scale === 60) {
          // Saturated: some label's probability is below float32's clipping epsilon, where a loss on
          // probabilities (evaluation, as plain tfjs computes it) can give no more than -log(1e-7) per sample.
          expect(expected).toBeGreaterThan(SAMPLES * 17);
          const clipped = tf.tidy(() => objective.evaluationSums(model, xs, ys).loss.dataSync()[0] as number);
          expect(clipped).toBeLessThan(SAMPLES * 16.2);
        }
        model.dispose();
      }
      tf.dispose([xs, ys]);
    },
  );

  it('categorical cross-entropy with one-hot labels takes the same path', () => {
    const model = softmaxModel('functional', 23, 60);
    const labels = classIndices(3);
    const xs = features();
    const ys = tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), 3), 'float32');
    const objective = new Objective(model, 'categoricalCrossentropy');
    const expected = logitsOf(model, xs).reduce(
      (sum, row, i) => sum + negativeLogSoftmax(row, labels[i] as number),
      0,
    );
    expectRelative(
      tf.tidy(() => objective.trainingSums(model, xs, ys).loss.dataSync()[0] as number),
      expected,
    );
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('computeGradients on a functional model matches tf.variableGrads of the plain tfjs loss', () => {
    const model = softmaxModel('functional', 31);
    const objective = new Objective(model, 'sparseCategoricalCrossentropy', ['accuracy']);
    const layout = parameterLayout(model);
    const taskModel: TaskModel = {
      model,
      layout,
      objective,
      conversion: { featureDtype: 'float32', labelDtype: 'int32' },
    };
    const featureValues = values(SAMPLES * FEATURES, 11, 2);
    const labels = classIndices(3);
    const result = computeGradients(taskModel, {
      count: SAMPLES,
      features: Float32Array.from(featureValues),
      labels: Int32Array.from(labels),
    });

    const variables = model.trainableWeights.map((weight) => weight.read() as tf.Variable);
    const reference = tf.tidy(() => {
      const xs = tf.tensor2d(featureValues, [SAMPLES, FEATURES]);
      const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), 3);
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.metrics.categoricalCrossentropy(oneHot, model.apply(xs) as tf.Tensor)) as tf.Scalar,
        variables,
      );
      return {
        loss: value.dataSync()[0] as number,
        gradient: variables.flatMap((variable) => Array.from((grads[variable.name] as tf.Tensor).dataSync())),
      };
    });
    expect(result.count).toBe(SAMPLES);
    expectRelative(result.lossSum, reference.loss);
    expect(result.gradient).toHaveLength(reference.gradient.length);
    const scale = Math.max(...reference.gradient.map(Math.abs));
    let worst = 0;
    reference.gradient.forEach((value, i) => {
      worst = Math.max(worst, Math.abs((result.gradient[i] as number) - value));
    });
    expect(worst / scale).toBeLessThan(1e-5);
    model.dispose();
  });
});
