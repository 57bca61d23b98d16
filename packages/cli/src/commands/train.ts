import { type Command, Option } from 'commander';
import { trainWithLocalWorkers } from '../local-training.js';
import { integer } from '../option-parsers.js';
import { createProgressReporter } from '../progress.js';
import { runUntilSignal } from '../signals.js';
import { formatSummary } from '../summary.js';
import {
  addBackendOption,
  addTrainingOptions,
  defaultRunDirectory,
  envOption,
  type TrainingFlags,
  trainingConfigFrom,
} from '../training-options.js';

interface TrainFlags extends TrainingFlags {
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
    )
    .addOption(
      envOption('--port <n>', 'coordinator port (0 = any free port)', 'CALLOSUM_PORT')
        .argParser(integer(0, 65535))
        .default(0),
    )
    .addOption(
      new Option('--json', 'print the summary as one JSON object on the last line of stdout').env(
        'CALLOSUM_JSON',
      ),
    );
  addTrainingOptions(command);
  addBackendOption(command);
  command.action(async (flags: TrainFlags) => {
    const progress = createProgressReporter();
    const outDir = flags.out ?? defaultRunDirectory();
    const summary = await runUntilSignal((signal) =>
      trainWithLocalWorkers({
        workers: flags.workers,
        backend: flags.backend,
        training: trainingConfigFrom(flags),
        outDir,
        dataDir: flags.data,
        port: flags.port,
        log: (line) => progress.log(line),
        onStep: (report) => progress.step(report),
        onEvaluation: (report) => progress.evaluation(report),
        signal,
      }),
    ).finally(() => progress.stop());
    process.stdout.write(flags.json ? `${JSON.stringify(summary)}\n` : `${formatSummary(summary)}\n`);
  });
}
