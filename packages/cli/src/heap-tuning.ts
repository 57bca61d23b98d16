import { setFlagsFromString } from 'node:v8';
import { CallosumError, ErrorCodes, keepFreedMemory } from '@callosum/core';
import { strictBoolean } from './env-options.js';

/**
 * How far V8 lets the old generation grow past the live heap before the next full collection, in
 * percent (V8's own choice is dynamic, about 10–100%). A coordinator keeps ~17 MB of objects alive
 * but receives megabytes of gradient frames every step; with V8's limits it ran a mark-compact
 * (5–15 ms) at nearly every step, mostly while the workers computed, taking a core from one of them.
 * At 400% (a limit of ~90 MB) it ran one in a 100-step run, and `pnpm bench` with 2 workers went
 * from 1,729 to about 1,800 samples/s (docs/benchmarks.md). The memory cost is tens of megabytes;
 * like GOGC for a Go server, throughput is worth it here.
 */
const HEAP_GROWING_PERCENT = 400;

/** Turns off keeping freed memory (core's keepFreedMemory) in the `callosum` command. */
export const KEEP_FREED_MEMORY_VARIABLE = 'CALLOSUM_KEEP_FREED_MEMORY';

/**
 * Tunes this process's memory for training: V8's garbage collector (above; V8 reads the flag whenever
 * it recomputes its limits, after each collection, so setting it at start-up takes effect from the first
 * collection) and, unless CALLOSUM_KEEP_FREED_MEMORY says no, malloc's (core's keepFreedMemory: freed
 * blocks are kept for the next step instead of faulted in afresh). Called by the `callosum` command;
 * programs embedding the coordinator or worker may call it too.
 */
export function tuneHeapForTraining(env: NodeJS.ProcessEnv = process.env): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  const setting = env[KEEP_FREED_MEMORY_VARIABLE];
  let keep = true;
  if (setting !== undefined) {
    try {
      keep = strictBoolean(setting);
    } catch (error) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `${KEEP_FREED_MEMORY_VARIABLE}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  if (keep) keepFreedMemory();
}
