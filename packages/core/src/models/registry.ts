import type { LayersModel } from '@tensorflow/tfjs-layers';
import { CallosumError, ErrorCodes } from '../errors.js';
import type { BuildContext, ModelBuilder, ModelSpec } from './spec.js';

const builders = new Map<string, ModelBuilder>();

/** Adds a model under `name`. Registering a taken name is a programming error and throws. */
export function registerModel(name: string, builder: ModelBuilder): void {
  if (builders.has(name)) {
    throw new CallosumError(ErrorCodes.DUPLICATE_REGISTRATION, `model "${name}" is already registered`);
  }
  builders.set(name, builder);
}

export function registeredModelNames(): string[] {
  return [...builders.keys()];
}

export function buildModel(spec: ModelSpec, context: BuildContext = { seed: 0 }): LayersModel {
  const builder = builders.get(spec.name);
  if (builder === undefined) {
    throw new CallosumError(
      ErrorCodes.UNKNOWN_NAME,
      `unknown model "${spec.name}"; registered models: ${registeredModelNames().join(', ')}`,
    );
  }
  return builder(spec.options ?? {}, context);
}
