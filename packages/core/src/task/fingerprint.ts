/**
 * A task's fingerprint: what must be the same in every process of a run, and depends on no data, no
 * run setting and not on the module's file name (which may differ between machines). The model's topology (each layer's class, configuration and inputs, with the names tfjs
 * numbers automatically, the initializers and any seed left out: a worker builds its model before it
 * learns the run's seed, and the weights it computes with are the coordinator's), its weights' shapes,
 * dtypes and trainability, the input and output specs, the loss, the metrics and the feature scaling. A
 * worker sends its own in its hello; the coordinator compares it with the run's and names the first
 * difference.
 */
import { createHash } from 'node:crypto';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { LossSpec } from './objective.js';
import { instantiateTask, type Task, type TaskModel } from './task.js';

export type Fingerprint = { readonly [key: string]: unknown };

export function taskFingerprint(task: Task, { model, objective }: TaskModel): Fingerprint {
  return {
    layers: layerFingerprints(model),
    weights: weightSpecs(model),
    inputs: model.inputs.map((input) => ({ shape: input.shape, dtype: input.dtype })),
    outputs: model.outputs.map((output) => ({ shape: output.shape, dtype: output.dtype })),
    loss: specFingerprint(task.loss),
    accuracy: objective.measuresAccuracy,
    metrics: task.metrics.map(specFingerprint),
    featureDivisor: task.featureDivisor ?? null,
  };
}

/** The fingerprint of a task's model as a worker builds it (any seed: seeds are left out). */
export function fingerprintOfTask(task: Task): Fingerprint {
  const taskModel = instantiateTask(task, 0);
  try {
    return taskFingerprint(task, taskModel);
  } finally {
    taskModel.model.dispose();
  }
}

/** A short digest of a fingerprint, e.g. for a checkpoint to name the task it belongs to. */
export function fingerprintDigest(fingerprint: Fingerprint): string {
  return createHash('sha256').update(JSON.stringify(fingerprint)).digest('hex').slice(0, 16);
}

/**
 * Each layer's class, configuration and inputs (by index). A nested model's configuration names its
 * layers with tfjs's per-process numbering, so it is described by its own layers instead.
 */
function layerFingerprints(model: LayersModel): unknown[] {
  const layerIndex = new Map(model.layers.map((layer, index) => [layer, index]));
  return model.layers.map((layer) => {
    const nested = (layer as Partial<LayersModel>).layers;
    return {
      class: layer.getClassName(),
      ...(nested === undefined
        ? { config: withoutRunSpecifics(layer.getConfig()) }
        : { layers: layerFingerprints(layer as LayersModel) }),
      inputs: layer.inboundNodes.flatMap((node) =>
        node.inboundLayers.map((inbound) => layerIndex.get(inbound) ?? 'outside the model'),
      ),
    };
  });
}

/** A loss or metric: its name, and for a function also a digest of its source (two may share a name). */
function specFingerprint(spec: LossSpec): string {
  if (typeof spec === 'string') return spec;
  const source = createHash('sha256').update(String(spec)).digest('hex').slice(0, 16);
  return `${spec.name || 'function'} (source ${source})`;
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
