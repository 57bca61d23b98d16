#!/usr/bin/env node
import type { Command } from 'commander';
import { attachBooleanValues } from './env-options.js';
import { failureMessage, flagsGiven } from './failure-message.js';
import { tuneHeapForTraining } from './heap-tuning.js';
import { createProgram } from './program.js';

/** How long a finished command's process may linger before it exits anyway. */
const LINGER_MS = 5_000;

const program = createProgram();
// The command whose action ran, so that a refusal can name the flags given to it.
let ran: Command | undefined;
program.hook('preAction', (_program, command) => {
  ran = command;
  // Before the command runs, so that a bad CALLOSUM_KEEP_FREED_MEMORY is refused like a bad flag.
  tuneHeapForTraining();
});
let finished = false;
program
  .parseAsync(attachBooleanValues(program, process.argv))
  .catch((error: unknown) => {
    const flags = ran === undefined ? new Set<string>() : flagsGiven(ran);
    process.stderr.write(`callosum: ${failureMessage(error, program.opts().debug === true, flags)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    finished = true;
    // Done, but something the command ran (a task module's own timer, say) would keep the process
    // alive for nothing: it exits anyway, once what it wrote has had time to go out.
    setTimeout(() => process.exit(), LINGER_MS).unref();
  });

// Nothing left to run while the command has not finished: it waits on a promise nothing can settle any
// more (a task module's top-level await or its data() that never resolves). Node would exit with 0.
process.once('beforeExit', () => {
  if (finished) return;
  process.stderr.write(
    'callosum: stopped: the command was waiting for something that can never happen, with nothing else left to ' +
      'run (a task module whose top-level await, or whose data(), returns a promise that never settles?)\n',
  );
  process.exitCode = 1;
});
