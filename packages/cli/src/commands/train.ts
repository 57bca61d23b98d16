import { type BackendPreference, runTask, taskTrainingConfig } from '@callosum/core';
import { defaultThreads } from '@callosum/worker';
import type { Command } from 'commander';
import { addOptions, envOption } from '../env-options.js';
import { gpusOption } from '../gpu-assignment.js';
import { trainWithLocalWorkers } from '../local-training.js';
import { assertBatchFits } from '../memory-fit.js';
import { integer } from '../option-parsers.js';
import { jsonOption, type RunFlags, reportRun, traceOption } from '../run-report.js';
import {
  backendOption,
  checkpointOptions,
  portOption,
  sharedMemoryOption,
  taskFrom,
  threadsOption,
  topologyOption,
  trainingOptions,
  trainingOptionsFrom,
  wireDtypeOption,
} from '../training-options.js';

interface TrainFlags extends RunFlags {
  workers: number;
  threads?: number;
  /** One of commander's choices (backendOption). */
  backend: BackendPreference;
  gpus?: string[];
  port: number;
  sharedMemory: boolean;
}

export function registerTrainCommand(program: Command): void {
  const command = program
    .command('train')
    .description('train on this machine: a coordinator plus N worker processes on loopback');
  addOptions(command, [
    envOption('--workers <n>', 'worker processes to start').argParser(integer(1, 256)).default(4),
    ...trainingOptions(),
    backendOption(),
    threadsOption('the usable cores ÷ --workers, at least 1'),
    gpusOption(),
    wireDtypeOption(),
    portOption(0),
    sharedMemoryOption(),
    topologyOption(),
    ...checkpointOptions(),
    traceOption(),
    jsonOption(),
  ]);
  command.action(async (flags: TrainFlags) => {
    const task = await taskFrom(command, flags);
    const training = trainingOptionsFrom(command, flags);
    const threads = flags.threads ?? defaultThreads(flags.workers);
    // A resumed run trains with the config it started with, so only a new run is checked here.
    if (flags.resume === undefined) {
      const chosen = runTask(task, training.model);
      const config = taskTrainingConfig(chosen, training, task === undefined);
      assertBatchFits(chosen, config, { workers: flags.workers, threads }, flags.backend);
    }
    return reportRun(command, flags, (settings, hooks) =>
      trainWithLocalWorkers({
        workers: flags.workers,
        threads,
        backend: flags.backend,
        ...(flags.gpus === undefined ? {} : { gpus: flags.gpus }),
        ...(task === undefined ? {} : { task, taskModule: flags.task }),
        training,
        sharedMemory: flags.sharedMemory,
        ...settings,
        dataDir: flags.data,
        port: flags.port,
        ...hooks,
      }),
    );
  });
}
