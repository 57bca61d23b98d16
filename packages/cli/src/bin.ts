#!/usr/bin/env node
import { CallosumError, ErrorCodes } from '@callosum/core';
import type { Command } from 'commander';
import { attachBooleanValues } from './env-options.js';
import { failureMessage, flagsGiven } from './failure-message.js';
import { tuneHeapForTraining } from './heap-tuning.js';
import { createProgram } from './program.js';
import { jsonFailureLine } from './run-report.js';

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
    // Also a failure before the run (a task module that cannot load): --json's last line says it.
    if (ran?.opts().json === true) process.stdout.write(`${jsonFailureLine(error)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    finished = true;
    // Done, but something the command ran (a task module's own timer, say) would keep the process
    // alive for nothing: it exits anyway, counting from when everything it wrote has gone out (a paused
    // `| less` must still get the summary).
    const linger = () => setTimeout(() => process.exit(), LINGER_MS).unref();
    process.stdout.write('', () => process.stderr.write('', linger));
  });

// Nothing left to run while the command has not finished: it waits on a promise nothing can settle any
// more (a task module's top-level await or its data() that never resolves). Node would exit with 0.
process.once('beforeExit', () => {
  if (finished) return;
  // A task module is what can leave nothing to run: its top level or its data() is the user's code.
  const stuck = new CallosumError(
    ErrorCodes.TASK_INVALID,
    'the command was waiting for something that can never happen, with nothing else left to run ' +
      '(a task module whose top-level await, or whose data(), returns a promise that never settles?)',
  );
  process.stderr.write(`callosum: stopped: ${stuck.message}\n`);
  if (ran?.opts().json === true) process.stdout.write(`${jsonFailureLine(stuck)}\n`);
  process.exitCode = 1;
});
