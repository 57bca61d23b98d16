/**
 * A task's fingerprint: what must be the same in every process of a run, and depends on no data, no
 * run setting and not on the module's file name (which may differ between machines). The model's topology (each layer's class, configuration and inputs, with the names tfjs
 * numbers automatically, the initializers and any seed left out: a worker builds its model before it
 * learns the run's seed, and the weights it computes with are the coordinator's), its weights' shapes,
 * dtypes and trainability, the input and output specs, the loss, the metrics and the feature scaling. A
 * worker sends its own in its hello; the coordinator compares it with the run's and names the first
 * difference.
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { Task, TaskModel } from './task.js';

export type Fingerprint = { readonly [key: string]: unknown };

export function taskFingerprint(task: Task, { model, objective }: TaskModel): Fingerprint {
  const layerIndex = new Map(model.layers.map((layer, index) => [layer, index]));
  return {
    layers: model.layers.map((layer) => ({
      class: layer.getClassName(),
      config: withoutRunSpecifics(layer.getConfig()),
      inputs: layer.inboundNodes.flatMap((node) =>
        node.inboundLayers.map((inbound) => layerIndex.get(inbound) ?? 'outside the model'),
      ),
    })),
    weights: weightSpecs(model),
    inputs: model.inputs.map((input) => ({ shape: input.shape, dtype: input.dtype })),
    outputs: model.outputs.map((output) => ({ shape: output.shape, dtype: output.dtype })),
    loss: objective.lossName,
    accuracy: objective.measuresAccuracy,
    metrics: objective.metricNames,
    featureDivisor: task.featureDivisor ?? null,
  };
}

function weightSpecs(model: LayersModel) {
  const trainable = new Set(model.trainableWeights);
  return model.weights.map((weight) => ({
    shape: weight.shape,
    dtype: weight.dtype,
    trainable: trainable.has(weight),
  }));
}

/**
 * The configuration without what differs between processes of one run: `name` keys, which tfjs numbers
 * per process (dense_Dense3), initializers (`kernelInitializer`, ...: only the coordinator's initial
 * weights are trained) and `seed` keys (a task seeds its initializers, or Dropout, from the run's seed,
 * which a worker does not know when it fingerprints its task).
 */
function withoutRunSpecifics(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutRunSpecifics);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => key !== 'name' && key !== 'seed' && !key.endsWith('Initializer'))
      .map(([key, inner]) => [key, withoutRunSpecifics(inner)]),
  );
}

/**
 * The first difference between two fingerprints, as a path and both values
 * ("layers[3].config.units: 64 here, 32 there"), or undefined when they are the same.
 */
export function fingerprintDifference(
  here: unknown,
  there: unknown,
  names: { here: string; there: string } = { here: 'here', there: 'there' },
  path = '',
): string | undefined {
  if (typeof here === 'object' && here !== null && typeof there === 'object' && there !== null) {
    const keys = [...new Set([...Object.keys(here), ...Object.keys(there)])];
    for (const key of keys) {
      const inner = Array.isArray(here) ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
      const difference = fingerprintDifference(
        (here as Record<string, unknown>)[key],
        (there as Record<string, unknown>)[key],
        names,
        inner,
      );
      if (difference !== undefined) return difference;
    }
    return undefined;
  }
  if (Object.is(here, there)) return undefined;
  return `${path}: ${JSON.stringify(here) ?? 'absent'} ${names.here}, ${JSON.stringify(there) ?? 'absent'} ${names.there}`;
}
