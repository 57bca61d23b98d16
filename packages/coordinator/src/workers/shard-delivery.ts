import { CallosumError, type Codec, ErrorCodes, toWireTensor } from '@callosum/core';
import type { ShardRequest, ShardSender } from '../dispatch/shard-dispatcher.js';
import type { WorkerConnection } from './connection.js';

/** The authoritative weights: version `step`, the run's current step. */
export interface CurrentWeights {
  readonly step: number;
  readonly weights: Float32Array;
}

/**
 * Delivers a shard's request to a worker, preceded by the weights it names unless the worker holds
 * them already. The weights frame is encoded at most once per version and framing (1.0 peers read
 * plain MessagePack), whichever worker needs it first.
 */
export class ShardDelivery implements ShardSender {
  private weightsFrames: { version: number; plain?: Uint8Array; tensor?: Uint8Array } = { version: -1 };

  /**
   * @param replicas a ring run: workers hold the weights in their replicas, and the coordinator's copy
   *   may be behind, so it is never sent; a worker without the current replica is a bug here.
   */
  constructor(
    private readonly current: CurrentWeights,
    private readonly codec: Codec,
    private readonly replicas = false,
  ) {}

  send(worker: WorkerConnection, request: ShardRequest): void {
    this.sendWeights(worker, request.weightsVersion);
    worker.send(request);
  }

  private sendWeights(worker: WorkerConnection, version: number): void {
    if (worker.holdsWeights(version)) return;
    if (this.replicas) {
      throw new CallosumError(
        ErrorCodes.INTERNAL,
        `worker ${worker.label} was given work without a replica of step ${version}`,
      );
    }
    if (version !== this.current.step) {
      throw new Error(`a request names weights ${version}, but the coordinator holds ${this.current.step}`);
    }
    if (this.weightsFrames.version !== version) this.weightsFrames = { version };
    const framing = worker.readsTensorFrames ? 'tensor' : 'plain';
    let frame = this.weightsFrames[framing];
    if (frame === undefined) {
      const weights = toWireTensor(this.current.weights, [this.current.weights.length]);
      frame = this.codec.encode({ type: 'weights', version, weights }, { tensorFrame: framing === 'tensor' });
      this.weightsFrames[framing] = frame;
    }
    worker.sendWeights(version, frame);
  }
}
