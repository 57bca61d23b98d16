import { Command } from 'commander';
import { registerCoordinatorCommand } from './commands/coordinator.js';
import { registerTrainCommand } from './commands/train.js';
import { registerWorkerCommand } from './commands/worker.js';

export function createProgram(): Command {
  const program = new Command('callosum')
    .description('synchronous data-parallel training with TensorFlow.js')
    .showHelpAfterError()
    .configureHelp({ showGlobalOptions: true });
  registerTrainCommand(program);
  registerCoordinatorCommand(program);
  registerWorkerCommand(program);
  return program;
}
