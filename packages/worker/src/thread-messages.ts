/** What a worker's main thread and its compute threads (compute-thread.ts) say to each other. */
import type { BackendName, BatchTotals, ComputeRequest, ErrorCode, Welcome } from '@callosum/core';
import type { ShardPiece } from './gradient-service.js';

/** Given to a compute thread when it starts. */
export interface ThreadSetup {
  /** The backend the worker's main thread loaded: every thread must compute with the same one. */
  readonly backend: BackendName;
  /** The worker's task module (`--task`), which the thread loads too. */
  readonly taskModule?: string | undefined;
}

export type ThreadRequest =
  | {
      readonly type: 'configure';
      readonly id: number;
      readonly welcome: Welcome;
      /** The run's current weights, shared with every thread (the main thread writes each version once). */
      readonly weights: SharedArrayBuffer;
    }
  | {
      readonly type: 'compute';
      readonly id: number;
      /** The whole shard, with `weightsVersion` already in the shared weights. */
      readonly request: ComputeRequest;
      readonly pieces: readonly ShardPiece[];
      /** One gradient buffer per piece, shared with the main thread, which combines them. */
      readonly outputs: readonly SharedArrayBuffer[];
    };

export type ThreadReply =
  | { readonly type: 'ready'; readonly backend: BackendName }
  | { readonly type: 'done'; readonly id: number; readonly totals: readonly BatchTotals[] }
  | { readonly type: 'failed'; readonly id: number; readonly code: ErrorCode; readonly message: string };
