import { readFileSync } from 'node:fs';
import { PROTOCOL_VERSION } from '@callosum/core';
import { Command } from 'commander';
import { registerCoordinatorCommand } from './commands/coordinator.js';
import { registerReportCommand } from './commands/report.js';
import { registerTrainCommand } from './commands/train.js';
import { registerWorkerCommand } from './commands/worker.js';
import { booleanOption } from './env-options.js';
import { USAGE_HINT } from './failure-message.js';

export function createProgram(): Command {
  const program = new Command('callosum')
    .description('synchronous data-parallel training with TensorFlow.js')
    .showHelpAfterError(USAGE_HINT)
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .addOption(booleanOption('--debug', 'print stack traces with errors'))
    .configureHelp({ showGlobalOptions: true });
  registerTrainCommand(program);
  registerCoordinatorCommand(program);
  registerWorkerCommand(program);
  registerReportCommand(program);
  return program;
}

/** The package's version, and the protocol it speaks: what decides whether a worker and a coordinator get along. */
function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return `${manifest.version} (protocol ${PROTOCOL_VERSION.major}.${PROTOCOL_VERSION.minor})`;
}
