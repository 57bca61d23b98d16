import { stepLabel } from '@callosum/core';

/**
 * Which round a shard belongs to: a training step (by the step it starts from), one of a step's
 * synchronised BatchNormalization passes, or an evaluation pass.
 */
export type RoundId =
  | { readonly kind: 'step'; readonly step: number }
  | { readonly kind: 'batch-norm'; readonly step: number; readonly pass: number }
  | { readonly kind: 'evaluation'; readonly round: number };

export const RoundIds = {
  step: (step: number): RoundId => ({ kind: 'step', step }),
  batchNorm: (step: number, pass: number): RoundId => ({ kind: 'batch-norm', step, pass }),
  evaluation: (round: number): RoundId => ({ kind: 'evaluation', round }),
} as const;

export function sameRound(a: RoundId, b: RoundId): boolean {
  return describeRound(a) === describeRound(b);
}

/** For log lines: "step 12", "step 12, BatchNormalization pass 1" (steps as people count them), "evaluation 0". */
export function describeRound(id: RoundId): string {
  switch (id.kind) {
    case 'step':
      return stepLabel(id.step);
    case 'batch-norm':
      return `${stepLabel(id.step)}, BatchNormalization pass ${id.pass}`;
    case 'evaluation':
      return `evaluation ${id.round}`;
  }
}
