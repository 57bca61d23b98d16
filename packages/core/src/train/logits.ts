import type { Tensor, Variable } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { CallosumError, ErrorCodes } from '../errors.js';

type Layer = LayersModel['layers'][number];

/** The layer that produces the model's (single) output. */
function outputLayer(model: LayersModel): Layer | undefined {
  return model.outputLayers?.[0] ?? model.layers.at(-1);
}

/** Whether the model's output comes from a Dense layer with softmax activation. */
export function hasSoftmaxHead(model: LayersModel): boolean {
  const head = outputLayer(model);
  return head?.getClassName() === 'Dense' && head.getConfig().activation === 'softmax';
}

/**
 * Everything before the softmax head, as a model sharing the original's layers and weights (one per
 * model, built on first use).
 */
const bodies = new WeakMap<LayersModel, LayersModel>();

function body(model: LayersModel, head: Layer): LayersModel {
  let found = bodies.get(model);
  if (found === undefined) {
    found = functionalModel({ inputs: model.inputs, outputs: head.input as SymbolicTensor });
    bodies.set(model, found);
  }
  return found;
}

/**
 * Runs the model up to, but not through, its final softmax, returning logits. The loss is then
 * computed with logSoftmax on these logits, which is stable; taking log of the model's softmax output
 * (or applying a second softmax) is not. The output layer must be a Dense layer with softmax
 * activation, so the saved model still outputs probabilities.
 */
export function forwardLogits(model: LayersModel, input: Tensor, training: boolean): Tensor {
  const head = outputLayer(model);
  if (head === undefined || !hasSoftmaxHead(model)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `model "${model.name}" must end in a Dense layer with softmax activation`,
    );
  }
  const hidden = body(model, head).apply(input, { training }) as Tensor;
  const [kernel, bias] = head.weights.map((weight) => weight.read() as Variable);
  const projected = tf.matMul(hidden, kernel as Tensor);
  return bias === undefined ? projected : tf.add(projected, bias);
}
