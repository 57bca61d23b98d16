import { z } from 'zod';
import type { PeerBytes } from '../transport/wire-traffic.js';

const bytes = z.number().int().nonnegative();

/**
 * What one training step moved over the wire, in the step events and (as a mean per step) the summary.
 * Named by role, not by topology, so that a topology in which workers also talk to each other can fill
 * in `busiestWorker` from what its workers report.
 */
export const stepBytesSchema = z.strictObject({
  /** Sent plus received by the coordinator in the step: weights and shard requests out, gradients in. */
  coordinator: bytes,
  /**
   * The most that one worker sent plus received in the step: its traffic with the coordinator, and in
   * the ring topology with its peers too.
   */
  busiestWorker: bytes,
});

export type StepBytes = z.infer<typeof stepBytesSchema>;

export const NO_BYTES: StepBytes = { coordinator: 0, busiestWorker: 0 };

/**
 * A step's bytes, from what the coordinator's frames to and from each worker moved, plus what each
 * worker reported moving among its peers (ring topology; by worker id, none in the star).
 */
export function stepBytes(
  peers: readonly PeerBytes[],
  peerExchange: ReadonlyMap<string, number> = new Map(),
): StepBytes {
  const withCoordinator = new Map(peers.map(({ peer, sent, received }) => [peer, sent + received]));
  const workers = new Set([...withCoordinator.keys(), ...peerExchange.keys()]);
  const perWorker = [...workers].map((id) => (withCoordinator.get(id) ?? 0) + (peerExchange.get(id) ?? 0));
  return {
    coordinator: [...withCoordinator.values()].reduce((sum, bytes) => sum + bytes, 0),
    busiestWorker: Math.max(0, ...perWorker),
  };
}

export function addStepBytes(a: StepBytes, b: StepBytes): StepBytes {
  return { coordinator: a.coordinator + b.coordinator, busiestWorker: a.busiestWorker + b.busiestWorker };
}

/** The mean per step of `total` over `steps`, in whole bytes; NaN (null in JSON) over no steps. */
export function meanStepBytes(total: StepBytes, steps: number): StepBytes {
  return {
    coordinator: Math.round(total.coordinator / steps),
    busiestWorker: Math.round(total.busiestWorker / steps),
  };
}
