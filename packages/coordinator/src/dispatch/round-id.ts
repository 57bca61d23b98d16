/** Which round a shard belongs to: a training step (by the step it starts from) or an evaluation pass. */
export type RoundId =
  | { readonly kind: 'step'; readonly step: number }
  | { readonly kind: 'evaluation'; readonly round: number };

export const RoundIds = {
  step: (step: number): RoundId => ({ kind: 'step', step }),
  evaluation: (round: number): RoundId => ({ kind: 'evaluation', round }),
} as const;

export function sameRound(a: RoundId, b: RoundId): boolean {
  return a.kind === 'step'
    ? b.kind === 'step' && a.step === b.step
    : b.kind === 'evaluation' && a.round === b.round;
}

/** For log lines: "step 12", "evaluation 0". */
export function describeRound(id: RoundId): string {
  return id.kind === 'step' ? `step ${id.step}` : `evaluation ${id.round}`;
}
