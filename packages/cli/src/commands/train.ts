import { resolveTrainingConfig } from '@callosum/core';
import type { Command } from 'commander';
import { trainWithLocalWorkers } from '../local-training.js';
import { assertBatchFits } from '../memory-fit.js';
import { integer } from '../option-parsers.js';
import { reportRun } from '../run-report.js';
import {
  addBackendOption,
  addCheckpointOptions,
  addJsonOption,
  addPortOption,
  addTrainingOptions,
  type CheckpointFlags,
  checkpointSettings,
  envOption,
  type TrainingFlags,
  trainingConfigFrom,
} from '../training-options.js';

interface TrainFlags extends TrainingFlags, CheckpointFlags {
  workers: number;
  backend: string;
  port: number;
  json?: boolean;
}

export function registerTrainCommand(program: Command): void {
  const command = program
    .command('train')
    .description('train on this machine: a coordinator plus N worker processes on loopback')
    .addOption(
      envOption('--workers <n>', 'worker processes to start', 'CALLOSUM_WORKERS')
        .argParser(integer(1, 256))
        .default(4),
    );
  addTrainingOptions(command);
  addBackendOption(command);
  addPortOption(command, 0);
  addCheckpointOptions(command);
  addJsonOption(command);
  command.action((flags: TrainFlags) => {
    const settings = checkpointSettings(flags);
    const training = trainingConfigFrom(flags);
    if (!settings.resume) assertBatchFits(resolveTrainingConfig(training), flags.workers, flags.backend);
    const reported = { command, json: flags.json === true, runDir: settings.outDir, resume: settings.resume };
    return reportRun(reported, (hooks) =>
      trainWithLocalWorkers({
        workers: flags.workers,
        backend: flags.backend,
        training,
        ...settings,
        dataDir: flags.data,
        port: flags.port,
        ...hooks,
      }),
    );
  });
}
