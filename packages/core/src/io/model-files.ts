import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { CallosumError, ErrorCodes } from '../errors.js';
import { writeFileAtomically } from './atomic-file.js';
import { writeFailure } from './file-errors.js';

export const MODEL_JSON_FILE = 'model.json';
const WEIGHTS_FILE = 'weights.bin';
/** The files `saveModel` writes into its directory. */
export const MODEL_FILES: readonly string[] = [MODEL_JSON_FILE, WEIGHTS_FILE];

/**
 * Saves a model in the TF.js layers format (`model.json` + one weights file) into `dir`, readable by
 * plain `tf.loadLayersModel` from any TF.js (over http, or with tfjs-node's `file://`).
 */
export async function saveModel(model: tfl.LayersModel, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true }).catch((error: unknown) => {
    throw writeFailure(dir, error);
  });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData;
      if (weightData === undefined || artifacts.weightSpecs === undefined) {
        throw new CallosumError(ErrorCodes.ARTIFACT_INVALID, 'the model produced no weights to save');
      }
      const bytes = new Uint8Array(tf.io.CompositeArrayBuffer.join(weightData));
      const modelJson = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs }],
      };
      // Weights first: a model.json that exists always points at complete weights.
      await writeFileAtomically(join(dir, WEIGHTS_FILE), bytes);
      await writeFileAtomically(join(dir, MODEL_JSON_FILE), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

async function readArtifactFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new CallosumError(
      ErrorCodes.ARTIFACT_INVALID,
      `${path}: cannot read (${(error as Error).message})`,
      {
        cause: error,
      },
    );
  }
}

function bytesPerElement(spec: tf.io.WeightsManifestEntry): number {
  const stored = spec.quantization?.dtype ?? spec.dtype;
  if (stored === 'uint8' || stored === 'bool') return 1;
  if (stored === 'uint16' || stored === 'float16') return 2;
  return 4;
}

/** Loads a model saved by `saveModel` (or any single-directory TF.js layers model) from `dir`. */
export async function loadModel(dir: string): Promise<tfl.LayersModel> {
  const jsonPath = await modelJsonPath(dir);
  const modelJson = await readModelJson(jsonPath);
  const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
    const specs = manifest.flatMap((group) => group.weights);
    const buffers = await Promise.all(
      manifest.flatMap((group) => group.paths).map((path) => readArtifactFile(join(dir, path))),
    );
    const data = Buffer.concat(buffers);
    const expected = specs.reduce(
      (total, spec) => total + spec.shape.reduce((product, dim) => product * dim, 1) * bytesPerElement(spec),
      0,
    );
    if (data.byteLength !== expected) {
      throw new CallosumError(
        ErrorCodes.ARTIFACT_INVALID,
        `${dir}: weight files hold ${data.byteLength} bytes, model.json describes ${expected}`,
      );
    }
    return [specs, data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)];
  });
  try {
    return await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (error) {
    throw new CallosumError(
      ErrorCodes.ARTIFACT_INVALID,
      `${jsonPath}: ${await whyNotLoaded(modelJson, error)}`,
      {
        cause: error,
      },
    );
  }
}

/** `dir`'s model.json. A path to a file (the model.json itself, say) is refused, saying what to give. */
async function modelJsonPath(dir: string): Promise<string> {
  const isFile = await stat(dir).then(
    (stats) => stats.isFile(),
    () => false,
  );
  if (isFile) {
    throw new CallosumError(
      ErrorCodes.ARTIFACT_INVALID,
      `${dir} is a file: give the directory that holds ${MODEL_JSON_FILE}, not the file`,
    );
  }
  return join(dir, MODEL_JSON_FILE);
}

/** The model.json at `path`, if it is JSON describing a TF.js LayersModel. */
async function readModelJson(path: string): Promise<tf.io.ModelJSON> {
  let modelJson: unknown;
  try {
    modelJson = JSON.parse((await readArtifactFile(path)).toString('utf8'));
  } catch (error) {
    if (error instanceof CallosumError) throw error;
    throw new CallosumError(ErrorCodes.ARTIFACT_INVALID, `${path}: not valid JSON`, { cause: error });
  }
  const { format, modelTopology } = (modelJson ?? {}) as Partial<tf.io.ModelJSON>;
  if (typeof modelTopology !== 'object' || modelTopology === null) {
    throw new CallosumError(
      ErrorCodes.ARTIFACT_INVALID,
      `${path}: no modelTopology, so not the model.json of a TF.js LayersModel`,
    );
  }
  if (format !== undefined && format !== 'layers-model') {
    throw new CallosumError(
      ErrorCodes.ARTIFACT_INVALID,
      `${path}: format ${JSON.stringify(format)}, not a TF.js LayersModel ("layers-model")`,
    );
  }
  return modelJson as tf.io.ModelJSON;
}

/**
 * Why tfjs could not load the model `modelJson` describes (it threw `error`): a weight whose shape in
 * the manifest is not the one its layer makes, found by building the model without its weights, or
 * else tfjs's own reason.
 */
async function whyNotLoaded(modelJson: tf.io.ModelJSON, error: unknown): Promise<string> {
  const reason = `not a loadable TF.js LayersModel (${error instanceof Error ? error.message : String(error)})`;
  let model: tfl.LayersModel;
  try {
    model = await tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology }));
  } catch {
    return reason;
  }
  const shapes = new Map(model.weights.map((weight) => [weight.originalName, weight.shape]));
  model.dispose();
  for (const spec of (modelJson.weightsManifest ?? []).flatMap((group) => group.weights)) {
    const built = shapes.get(spec.name);
    if (built !== undefined && built.join() !== spec.shape.join()) {
      return `weight ${spec.name} has shape [${spec.shape.join(', ')}] in the weights manifest, but its layer makes it [${built.join(', ')}]`;
    }
  }
  return reason;
}
