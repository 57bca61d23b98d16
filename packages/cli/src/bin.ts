#!/usr/bin/env node
import { failureMessage } from './failure-message.js';
import { tuneHeapForTraining } from './heap-tuning.js';
import { createProgram } from './program.js';

tuneHeapForTraining();
const program = createProgram();
program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`callosum: ${failureMessage(error, program.opts().debug === true)}\n`);
  process.exitCode = 1;
});
