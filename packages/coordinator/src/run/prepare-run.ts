import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildModel,
  initBackend,
  type LayersModel,
  loadLatestCheckpoint,
  loadMnist,
  type MnistDataset,
  type ParameterLayout,
  parameterLayout,
  readFlatWeights,
  resolveTrainingConfig,
  TrainingState,
} from '@callosum/core';
import type { CoordinatorOptions } from '../options.js';

/** Everything a run starts from: its directory, its config and state (fresh or resumed), data and model. */
export interface PreparedRun {
  readonly checkpointDir: string;
  /** The checkpoint a resumed run continues from. */
  readonly resumedFrom: string | undefined;
  readonly state: TrainingState;
  readonly dataset: MnistDataset;
  readonly model: LayersModel;
  readonly layout: ParameterLayout;
}

/**
 * The start of a run, in one place: the run directory, resuming from its newest intact checkpoint
 * (whose config then wins over `options.training`), the dataset and the model.
 */
export async function prepareRun(
  options: CoordinatorOptions,
  log: (line: string) => void,
): Promise<PreparedRun> {
  const checkpointDir = join(options.outDir, 'checkpoints');
  await mkdir(checkpointDir, { recursive: true });
  const resumed = options.resume === true ? await loadLatestCheckpoint(checkpointDir, log) : undefined;
  const config = resumed?.checkpoint.config ?? resolveTrainingConfig(options.training ?? {});

  // The coordinator never needs a fast backend: it builds the model once and saves it at the end.
  await initBackend('cpu');
  const dataset =
    options.dataset ?? (await loadMnist(options.dataDir === undefined ? {} : { dir: options.dataDir }));
  const model = buildModel(config.model, { seed: config.seed });
  const layout = parameterLayout(model);
  const state =
    resumed === undefined
      ? new TrainingState(config, readFlatWeights(model, layout), dataset.train.count)
      : TrainingState.restore(resumed.checkpoint, dataset.train.count);
  return { checkpointDir, resumedFrom: resumed?.path, state, dataset, model, layout };
}
