import {
  CallosumError,
  type Codec,
  DEFAULT_WIRE_DTYPE,
  ErrorCodes,
  floatsToWire,
  isCallosumError,
  type WireDtype,
} from '@callosum/core';
import type { ShardRequest, ShardSender } from '../dispatch/shard-dispatcher.js';
import type { WorkerConnection } from './connection.js';

/** The authoritative weights: version `step`, the run's current step. */
export interface CurrentWeights {
  readonly step: number;
  readonly weights: Float32Array;
}

/** How the weights travel: in the run's wire dtype, and whom to tell when they cannot. */
export interface WeightsEncoding {
  readonly wireDtype: WireDtype;
  /**
   * The weights overflow the wire dtype (a float16 beyond ±65504): the round must stop. Called once
   * the sending call has returned, never in the middle of a dispatcher's assignment.
   */
  readonly unsendable: (error: CallosumError) => void;
}

/** One version of the weights, encoded for each framing workers read that it was sent in so far. */
interface WeightsFrames {
  readonly version: number;
  plain?: Uint8Array;
  tensor?: Uint8Array;
  /** Whether a socket was given the tensor frame itself (not a file's reference). */
  tensorOnASocket: boolean;
}

const FLOAT32_WEIGHTS: WeightsEncoding = {
  wireDtype: DEFAULT_WIRE_DTYPE,
  unsendable: (error) => {
    throw error; // float32 carries any float32: never called
  },
};

/**
 * Delivers a shard's request to a worker, preceded by the weights it names unless the worker holds
 * them already. The weights frame is encoded at most once per version and framing (1.0 peers read
 * plain MessagePack), whichever worker needs it first, in the run's wire dtype: the coordinator's own
 * weights stay float32, only what travels is rounded.
 */
export class ShardDelivery implements ShardSender {
  private weightsFrames: WeightsFrames = { version: -1, tensorOnASocket: false };

  /**
   * @param replicas a ring run: workers hold the weights in their replicas, and the coordinator's copy
   *   may be behind, so it is never sent; a worker without the current replica is a bug here.
   */
  constructor(
    private readonly current: CurrentWeights,
    private readonly codec: Codec,
    private readonly encoding: WeightsEncoding = FLOAT32_WEIGHTS,
    private readonly replicas = false,
  ) {}

  send(worker: WorkerConnection, request: ShardRequest): void {
    worker.sendTogether(() => {
      if (this.sendWeights(worker, request.weightsVersion)) worker.send(request);
    });
  }

  /** Whether the worker holds weights `version` now. */
  private sendWeights(worker: WorkerConnection, version: number): boolean {
    if (worker.holdsWeights(version)) return true;
    if (this.replicas) {
      throw new CallosumError(
        ErrorCodes.INTERNAL,
        `worker ${worker.label} was given work without a replica of step ${version}`,
      );
    }
    if (version !== this.current.step) {
      throw new Error(`a request names weights ${version}, but the coordinator holds ${this.current.step}`);
    }
    let reuse: ArrayBuffer | undefined;
    if (this.weightsFrames.version !== version) {
      // The last version's tensor frame went to files only (workers on this machine): nothing refers
      // to its memory, and this version's is written in it instead of new memory.
      const { tensor, tensorOnASocket } = this.weightsFrames;
      if (tensor !== undefined && !tensorOnASocket) reuse = tensor.buffer as ArrayBuffer;
      this.weightsFrames = { version, tensorOnASocket: false };
    }
    const framing = worker.readsTensorFrames ? 'tensor' : 'plain';
    let frame = this.weightsFrames[framing];
    if (frame === undefined) {
      frame = this.encodeWeights(version, framing, reuse);
      if (frame === undefined) return false;
      this.weightsFrames[framing] = frame;
    }
    if (!worker.sendWeights(version, frame) && framing === 'tensor')
      this.weightsFrames.tensorOnASocket = true;
    return true;
  }

  private encodeWeights(
    version: number,
    framing: 'tensor' | 'plain',
    reuse: ArrayBuffer | undefined,
  ): Uint8Array | undefined {
    try {
      const weights = floatsToWire(
        this.current.weights,
        this.encoding.wireDtype,
        `weights of step ${version}`,
      );
      return this.codec.encode(
        { type: 'weights', version, weights },
        { tensorFrame: framing === 'tensor', ...(reuse === undefined ? {} : { reuse }) },
      );
    } catch (error) {
      if (!isCallosumError(error, 'NON_FINITE')) throw error;
      queueMicrotask(() => this.encoding.unsendable(error));
      return undefined;
    }
  }
}
