import { COORDINATOR_DEFAULTS } from '@callosum/coordinator';
import { DEFAULT_TRAINING_CONFIG } from '@callosum/core';
import { WORKER_DEFAULTS } from '@callosum/worker';
import { describe, expect, it } from 'vitest';
import { createProgram } from './program.js';

/** The `(default: …)` commander prints for `flag` in the help of `commandName`, as written there. */
function shownDefault(commandName: string, flag: string): string | undefined {
  const command = createProgram().commands.find((candidate) => candidate.name() === commandName);
  if (command === undefined) throw new Error(`no command ${commandName}`);
  // Wide enough that no option's line wraps, so each flag and its default share one line.
  command.configureHelp({ helpWidth: 10_000 });
  const line = command
    .helpInformation()
    .split('\n')
    .find((candidate) => new RegExp(`^\\s+(-\\w, )?${flag}\\b`).test(candidate));
  if (line === undefined) throw new Error(`${commandName} has no ${flag} in its help`);
  return /[(,] ?default: ("[^"]*"|[^,)]+)/.exec(line)?.[1];
}

const training = DEFAULT_TRAINING_CONFIG;
const trainingFlags: [string, unknown][] = [
  ['--model', training.model.name],
  ['--epochs', training.epochs],
  ['--batch-size', training.batchSize],
  ['--optimizer', training.optimizer.name],
  ['--lr', training.learningRate],
  ['--schedule', training.schedule.kind],
  ['--seed', training.seed],
  ['--max-shift', training.maxShift],
  ['--checkpoint-every', COORDINATOR_DEFAULTS.checkpointEverySteps],
];

describe('the help shows the libraries’ defaults, taken from where the libraries define them', () => {
  it.each(['train', 'coordinator'])(
    '%s: the training run’s defaults (core) and the checkpoint interval',
    (name) => {
      for (const [flag, value] of trainingFlags)
        expect([flag, shownDefault(name, flag)]).toEqual([flag, JSON.stringify(value)]);
    },
  );

  it('coordinator: the coordinator library’s defaults', () => {
    expect(shownDefault('coordinator', '--host')).toBe(JSON.stringify(COORDINATOR_DEFAULTS.host));
    expect(shownDefault('coordinator', '--min-workers')).toBe(String(COORDINATOR_DEFAULTS.minWorkers));
    expect(shownDefault('coordinator', '--start-timeout')).toBe(String(COORDINATOR_DEFAULTS.startTimeoutMs));
  });

  it('worker: the worker library’s defaults', () => {
    expect(shownDefault('worker', '--give-up-after')).toBe(String(WORKER_DEFAULTS.giveUpAfterMs));
    expect(shownDefault('worker', '--backend')).toBe(JSON.stringify(WORKER_DEFAULTS.backend));
  });
});
