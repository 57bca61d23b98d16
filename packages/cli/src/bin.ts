#!/usr/bin/env node
import type { Command } from 'commander';
import { attachBooleanValues } from './env-options.js';
import { failureMessage, flagsGiven } from './failure-message.js';
import { tuneHeapForTraining } from './heap-tuning.js';
import { createProgram } from './program.js';

const program = createProgram();
// The command whose action ran, so that a refusal can name the flags given to it.
let ran: Command | undefined;
program.hook('preAction', (_program, command) => {
  ran = command;
  // Before the command runs, so that a bad CALLOSUM_KEEP_FREED_MEMORY is refused like a bad flag.
  tuneHeapForTraining();
});
program.parseAsync(attachBooleanValues(program, process.argv)).catch((error: unknown) => {
  const flags = ran === undefined ? new Set<string>() : flagsGiven(ran);
  process.stderr.write(`callosum: ${failureMessage(error, program.opts().debug === true, flags)}\n`);
  process.exitCode = 1;
});
