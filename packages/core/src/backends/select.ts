import * as tf from '@tensorflow/tfjs-core';
import { CallosumError, ErrorCodes } from '../errors.js';
import './builtin.js';
import { type BackendName, type BackendPreference, candidatesFor } from './registry.js';

export interface BackendChoice {
  readonly backend: BackendName;
  readonly packageName: string;
  /** One sentence saying why this backend was chosen (and why faster ones were not). */
  readonly reason: string;
  /** Every candidate tried before the chosen one, with why it failed. */
  readonly skipped: readonly { packageName: string; error: string }[];
}

const INSTALL_HINT =
  'install it next to your application (e.g. `pnpm add @tensorflow/tfjs-node-gpu@4.22.0`; ' +
  'tfjs-node-gpu needs CUDA 11.2 and cuDNN 8.1)';

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

/**
 * Loads and activates a backend for training. `auto` tries tfjs-node-gpu, tfjs-node, wasm, then the
 * pure-JS cpu backend, and the result says which one it took and why.
 */
export async function initBackend(preference: BackendPreference = 'auto'): Promise<BackendChoice> {
  const skipped: { packageName: string; error: string }[] = [];
  for (const candidate of candidatesFor(preference)) {
    try {
      await candidate.load();
      if (!(await tf.setBackend(candidate.tfjsBackend))) {
        throw new Error(`tfjs could not initialise the "${candidate.tfjsBackend}" backend`);
      }
      await tf.ready();
      const loaded =
        skipped.length === 0
          ? `${candidate.packageName} loaded (${preference === 'auto' ? 'first choice' : 'requested'})`
          : `${candidate.packageName} loaded; skipped ${skipped.map((s) => `${s.packageName} (${s.error})`).join('; ')}`;
      const reason = candidate.describe === undefined ? loaded : `${loaded}, ${candidate.describe()}`;
      return { backend: candidate.backend, packageName: candidate.packageName, reason, skipped };
    } catch (error) {
      skipped.push({ packageName: candidate.packageName, error: firstLine(error) });
    }
  }
  const tried = skipped.map((s) => `${s.packageName}: ${s.error}`).join('; ');
  throw new CallosumError(
    ErrorCodes.BACKEND_UNAVAILABLE,
    `backend "${preference}" is not available here (${tried})` +
      (preference === 'tensorflow' ? `; to use it, ${INSTALL_HINT}` : ''),
  );
}
