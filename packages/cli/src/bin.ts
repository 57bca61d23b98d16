#!/usr/bin/env node
import { isCallosumError } from '@callosum/core';
import { tuneHeapForTraining } from './heap-tuning.js';
import { createProgram } from './program.js';

tuneHeapForTraining();
createProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    const text = isCallosumError(error)
      ? `${error.code}: ${error.message}`
      : String(error instanceof Error ? error.stack : error);
    process.stderr.write(`callosum: ${text}\n`);
    process.exitCode = 1;
  });
