/** What fit says when one of its callbacks throws: which call threw what, and how the run can go on. */
import { join } from 'node:path';
import { inspect } from 'node:util';
import { RunFiles } from '@callosum/coordinator';
import { CallosumError, ErrorCodes, isCallosumError, newestCheckpointStep } from '@callosum/core';

/**
 * The error that stops a run whose callback `call` (`callbacks[1].onEpochEnd(1, …)`) threw `thrown`:
 * COORDINATOR_STOPPING, as a signal's stop, so the run checkpoints and remote workers wait for a resume.
 */
export function callbackFailure(call: string, thrown: unknown): CallosumError {
  const what = isCallosumError(thrown)
    ? `${thrown.code}: ${thrown.message}`
    : thrown instanceof Error
      ? String(thrown)
      : inspect(thrown, { breakLength: Number.POSITIVE_INFINITY });
  return new CallosumError(ErrorCodes.COORDINATOR_STOPPING, `${call} threw ${what}`, { cause: thrown });
}

/** `failure` once the run it stopped has ended, saying where the run can be resumed from. */
export async function stoppedByCallback(failure: CallosumError, outDir: string): Promise<CallosumError> {
  const step = await newestCheckpointStep(join(outDir, RunFiles.CHECKPOINTS));
  const resume =
    step === undefined
      ? `the run stopped without a checkpoint in ${outDir}: it cannot be resumed`
      : `the run stopped; its newest checkpoint (step ${step}) is in ${outDir}: fit with resume: true continues from there`;
  return new CallosumError(failure.code, `${failure.message}; ${resume}`, { cause: failure.cause });
}
