import type { EvaluateRequest, EvaluationMessage, Hello } from '@callosum/core';

/**
 * Pieces of a worker written against the protocol directly, for tests that need to see or shape the
 * frames themselves: its hello, announcing protocol 1.`minor`, and an evaluation that counts a shard's
 * samples and measures nothing.
 */
export function protocolHello(minor: number): Hello {
  return {
    type: 'hello',
    protocol: { major: 1, minor },
    workerName: `protocol-1.${minor}`,
    backend: 'cpu',
    pid: minor,
    hostname: 'here',
  };
}

export function emptyEvaluation(request: EvaluateRequest): EvaluationMessage {
  return {
    type: 'evaluation',
    round: request.round,
    shard: request.shard,
    lossSum: 0,
    correct: 0,
    metricSums: [],
    count: request.labels.shape[0] as number,
    timings: { decodeMs: 0, computeMs: 0 },
  };
}
