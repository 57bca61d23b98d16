import type { LayersModel } from '@tensorflow/tfjs-layers';

/**
 * A model is named by a small serializable spec so that another process (a worker, a resumed run)
 * rebuilds exactly the same architecture from it. Options are plain JSON values.
 */
export interface ModelSpec {
  readonly name: string;
  readonly options?: Readonly<Record<string, unknown>> | undefined;
}

export interface BuildContext {
  /** Seeds every initializer, so the same spec and seed give the same initial weights on any backend. */
  readonly seed: number;
}

/** Builds an uncompiled model whose last layer is a Dense softmax classifier (see ./logits.ts). */
export type ModelBuilder = (options: Readonly<Record<string, unknown>>, context: BuildContext) => LayersModel;
