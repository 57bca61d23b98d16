import {
  buildModel,
  datasetFrom,
  initBackend,
  type LayersModel,
  loadLatestCheckpoint,
  type MnistDataset,
  type ParameterLayout,
  parameterLayout,
  readFlatWeights,
  resolveTrainingConfig,
  TrainingState,
} from '@callosum/core';
import type { CoordinatorOptions } from '../options.js';
import type { RunDirectory } from './run-directory.js';

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
 * The start of a run, in one place: the run directory (claimed or reopened by RunDirectory), resuming from its newest intact checkpoint
 * (whose config then wins over `options.training`), the dataset and the model.
 */
export async function prepareRun(
  runDirectory: RunDirectory,
  options: CoordinatorOptions,
  log: (line: string) => void,
): Promise<PreparedRun> {
  const { checkpointDir } = runDirectory;
  const resumed = options.resume === true ? await loadLatestCheckpoint(checkpointDir, log) : undefined;
  const config = resumed?.checkpoint.config ?? resolveTrainingConfig(options.training ?? {});
  // Checks that a resumed checkpoint belongs to this run, and marks a new run's directory as its own.
  await runDirectory.adopt(config, resumed?.path);

  // The coordinator never needs a fast backend: it builds the model once and saves it at the end.
  await initBackend('cpu');
  const dataset = await datasetFrom(options);
  const model = buildModel(config.model, { seed: config.seed });
  const layout = parameterLayout(model);
  const state =
    resumed === undefined
      ? new TrainingState(config, readFlatWeights(model, layout), dataset.train.count)
      : TrainingState.restore(resumed.checkpoint, dataset.train.count);
  return { checkpointDir, resumedFrom: resumed?.path, state, dataset, model, layout };
}
