import {
  type ErrorCode,
  ErrorCodes,
  formatProtocol,
  PROTOCOL_VERSION,
  protocolAtLeast,
  type Reduction,
  type WorkerMessage,
} from '@callosum/core';
import { type CloseCode, CloseCodes } from '../transport/close-codes.js';

export type HelloMessage = Extract<WorkerMessage, { type: 'hello' }>;

/** Why a hello is refused: told to the worker (shutdown), written to the log, and the close code. */
export interface Refusal {
  readonly code: ErrorCode;
  readonly reason: string;
  readonly logLine: string;
  readonly closeCode: CloseCode;
}

export interface AdmissionContext {
  /** How the worker is named in log lines. */
  readonly label: string;
  /** The run's reduction, which may need a newer protocol than the worker's. */
  readonly reduction: Pick<Reduction, 'name' | 'minimumProtocol'>;
  readonly healthyWorkers: number;
  readonly maxWorkers: number;
}

/** Whether a worker that said `hello` may join this run: undefined, or why not. */
export function admissionRefusal(hello: HelloMessage, run: AdmissionContext): Refusal | undefined {
  const { major, minor } = hello.protocol;
  const versionProblem =
    major !== PROTOCOL_VERSION.major
      ? `coordinator speaks protocol ${PROTOCOL_VERSION.major}.x, worker ${major}.${minor}`
      : !protocolAtLeast(hello.protocol, run.reduction.minimumProtocol)
        ? `this run uses ${run.reduction.name}: protocol ${formatProtocol(run.reduction.minimumProtocol)} or later needed; worker speaks ${major}.${minor}`
        : undefined;
  if (versionProblem !== undefined) {
    return {
      code: ErrorCodes.VERSION_MISMATCH,
      reason: versionProblem,
      logLine: `worker ${run.label} rejected: ${versionProblem}`,
      closeCode: CloseCodes.PROTOCOL_ERROR,
    };
  }
  if (run.healthyWorkers >= run.maxWorkers) {
    return {
      code: ErrorCodes.RUN_FULL,
      reason: `the run has its maximum of ${run.maxWorkers} workers`,
      logLine: `worker ${hello.workerName} refused: already ${run.maxWorkers} workers`,
      closeCode: CloseCodes.TRY_AGAIN_LATER,
    };
  }
  return undefined;
}
