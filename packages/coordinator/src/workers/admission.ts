import {
  counted,
  type ErrorCode,
  ErrorCodes,
  escapeUnprintable,
  type Fingerprint,
  fingerprintDifference,
  formatProtocol,
  MINIMUM_PROTOCOL,
  PEER_TLS_PROTOCOL,
  PROTOCOL_VERSION,
  protocolAtLeast,
  protocolForWireDtype,
  SYNC_BATCH_NORM_PROTOCOL,
  type WireDtype,
  type WorkerMessage,
} from '@callosum/core';
import type { Topology } from '../settings.js';
import { type CloseCode, CloseCodes } from '../transport/close-codes.js';

/** The first protocol with the ring topology's messages. */
const RING_PROTOCOL = { major: 1, minor: 5 } as const;

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
  /** A ring run needs workers that speak the ring's messages (1.5). */
  readonly topology: Topology;
  readonly healthyWorkers: number;
  readonly maxWorkers: number;
  /** The run's task: its name and, for a task module, the fingerprint every worker's must equal. */
  readonly task: { readonly name: string; readonly fingerprint: Fingerprint | undefined };
  /** What weights and gradients travel in: a 16-bit dtype needs a worker that reads it (1.6). */
  readonly wireDtype: WireDtype;
  /** A run that synchronises BatchNormalization needs workers that compute its passes (1.7). */
  readonly syncBatchNorm: boolean;
  /** A ring run's members all reduce over TLS, or all without (1.8's `hello.peerTls`). */
  readonly peerTls: boolean;
  /** Why this worker's process, evicted for its results, is not taken back yet (EvictionCooldowns). */
  readonly cooldown: string | undefined;
}

/** Whether a worker that said `hello` may join this run: undefined, or why not. */
export function admissionRefusal(hello: HelloMessage, run: AdmissionContext): Refusal | undefined {
  const { major, minor } = hello.protocol;
  // Refused here rather than welcomed: an older worker would misread what it is sent.
  const wire = protocolForWireDtype(run.wireDtype);
  const requirements = [
    { version: MINIMUM_PROTOCOL, feature: 'typed shard features' },
    ...(run.topology === 'ring' ? [{ version: RING_PROTOCOL, feature: 'the ring topology' }] : []),
    ...(run.topology === 'ring' && run.peerTls
      ? [{ version: PEER_TLS_PROTOCOL, feature: 'TLS between ring peers (--peer-tls)' }]
      : []),
    ...(wire === undefined ? [] : [wire]),
    ...(run.syncBatchNorm
      ? [
          {
            version: SYNC_BATCH_NORM_PROTOCOL,
            feature: 'synchronised BatchNormalization (--batch-norm sync)',
          },
        ]
      : []),
  ];
  const unmet = requirements.find((required) => !protocolAtLeast(hello.protocol, required.version));
  const versionProblem =
    major !== PROTOCOL_VERSION.major
      ? `coordinator speaks protocol ${PROTOCOL_VERSION.major}.x, worker ${major}.${minor}`
      : unmet !== undefined
        ? `protocol ${formatProtocol(unmet.version)} or later needed (${unmet.feature}); worker speaks ${major}.${minor}`
        : undefined;
  if (versionProblem !== undefined) {
    return {
      code: ErrorCodes.VERSION_MISMATCH,
      reason: versionProblem,
      logLine: `worker ${run.label} rejected: ${versionProblem}`,
      closeCode: CloseCodes.PROTOCOL_ERROR,
    };
  }
  const taskProblem = taskMismatch(hello, run.task);
  if (taskProblem !== undefined) {
    return {
      code: ErrorCodes.TASK_MISMATCH,
      reason: taskProblem,
      logLine: `worker ${hello.workerName} (${run.label}) refused: ${taskProblem}`,
      closeCode: CloseCodes.PROTOCOL_ERROR,
    };
  }
  const peerTlsProblem = run.topology === 'ring' ? peerTlsMismatch(hello, run.peerTls) : undefined;
  if (peerTlsProblem !== undefined) {
    return {
      code: ErrorCodes.PEER_TLS_MISMATCH,
      reason: peerTlsProblem,
      logLine: `worker ${hello.workerName} (${run.label}) refused: ${peerTlsProblem}`,
      closeCode: CloseCodes.PROTOCOL_ERROR,
    };
  }
  if (run.cooldown !== undefined) {
    return {
      code: ErrorCodes.EVICTION_COOLDOWN,
      reason: run.cooldown,
      logLine: `worker ${hello.workerName} (${run.label}) refused: ${run.cooldown}`,
      closeCode: CloseCodes.TRY_AGAIN_LATER,
    };
  }
  if (run.healthyWorkers >= run.maxWorkers) {
    return {
      code: ErrorCodes.RUN_FULL,
      reason: `the run has its maximum of ${run.maxWorkers} workers`,
      logLine: `worker ${hello.workerName} (${run.label}) refused: already ${counted(run.maxWorkers, 'worker')}`,
      closeCode: CloseCodes.TRY_AGAIN_LATER,
    };
  }
  return undefined;
}

/** Why the worker's peer links cannot reach the run's other members (one side uses TLS, the other not), if they cannot. */
function peerTlsMismatch(hello: HelloMessage, runPeerTls: boolean): string | undefined {
  const workerPeerTls = hello.peerTls === true;
  if (workerPeerTls === runPeerTls) return undefined;
  return runPeerTls
    ? "this ring's workers reduce over TLS (coordinator --peer-tls); start the worker with --peer-tls-ca and a certificate that CA signed"
    : "the worker reduces over TLS (--peer-tls-ca), this ring's workers without: start the coordinator with --peer-tls, or the worker without --peer-tls-ca";
}

/** Why the worker's task is not the run's (each side's task, or that one side has none), if it is not. */
function taskMismatch(hello: HelloMessage, run: AdmissionContext['task']): string | undefined {
  if (run.fingerprint === undefined) {
    return hello.task === undefined
      ? undefined
      : `this run trains the built-in model ${run.name}; the worker was started with --task`;
  }
  if (hello.task === undefined) return `this run trains task ${run.name}; start the worker with --task`;
  const difference = fingerprintDifference(run.fingerprint, hello.task, {
    here: 'on the coordinator',
    there: 'on the worker',
  });
  // Escaped: the worker chose its fingerprint's keys and values, and this is written to the log.
  return difference === undefined
    ? undefined
    : escapeUnprintable(`the worker's task differs from the run's: ${difference}`).slice(0, 1000);
}
