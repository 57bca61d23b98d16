import { readFileSync } from 'node:fs';
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

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}
