// Importing the built-in models registers them; everything that builds a model goes through here.
export { ModelNames } from './builtin.js';
export { buildModel, registeredModelNames, registerModel } from './registry.js';
export type { BuildContext, ModelBuilder, ModelSpec } from './spec.js';
