#!/usr/bin/env node
import { attachBooleanValues } from './env-options.js';
import { failureMessage } from './failure-message.js';
import { tuneHeapForTraining } from './heap-tuning.js';
import { createProgram } from './program.js';

tuneHeapForTraining();
const program = createProgram();
program.parseAsync(attachBooleanValues(program, process.argv)).catch((error: unknown) => {
  const flags = new Set(
    program.commands.flatMap((command) => command.options.map((option) => option.long ?? '')),
  );
  process.stderr.write(`callosum: ${failureMessage(error, program.opts().debug === true, flags)}\n`);
  process.exitCode = 1;
});
