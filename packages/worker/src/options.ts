/**
 * The worker's options, defined once: a zod schema with the defaults and the checks, which runWorker
 * applies before it does anything else (in particular before loading a backend, which can take seconds).
 */
import {
  BackendNames,
  type BackendPreference,
  integerOption,
  MAX_NAME_LENGTH,
  MIN_TOKEN_LENGTH,
  parseOptions,
  pemProblem,
  unprintableNameProblem,
} from '@callosum/core';
import { z } from 'zod';
import { defaultThreads } from './cpu-budget.js';

export const WORKER_DEFAULTS = {
  backend: BackendNames.AUTO as BackendPreference,
  /** Give up when no coordinator has been reachable for this long (ms). */
  giveUpAfterMs: 60_000,
  /** First reconnect delay (ms); doubles up to maxReconnectDelayMs, with jitter. */
  reconnectDelayMs: 200,
  maxReconnectDelayMs: 5_000,
  /** Largest frame accepted from the coordinator (bytes). */
  maxMessageBytes: 256 * 1024 * 1024,
  /** Ring topology: the port to listen on for peers; 0 picks a free one. */
  peerPort: 0,
} as const;

/** The most compute threads a worker takes (`threads`). */
export const MAX_WORKER_THREADS = 256;

const coordinatorUrl = z.custom<string>((value) => typeof value === 'string' && isWebSocketUrl(value), {
  error: (issue) => `must be a ws:// or wss:// URL of the coordinator, got ${JSON.stringify(issue.input)}`,
});

/** A PEM text: at least one `-----BEGIN …-----` block (an empty one is refused, not taken as none). */
const pem = z.string().check((context) => {
  const problem = pemProblem(context.value, 'a PEM text (-----BEGIN …)');
  if (problem !== undefined) context.issues.push({ code: 'custom', message: problem, input: context.value });
});

/**
 * Every option a worker takes. Strict: a misspelt option is an error, not silently ignored. Timeouts
 * and delays are positive integers of milliseconds; the first reconnect delay is at most the largest.
 */
export const workerOptionsSchema = z
  .strictObject({
    /** ws:// or wss:// address of the coordinator. */
    url: coordinatorUrl,
    backend: z
      .enum(Object.values(BackendNames) as [BackendPreference, ...BackendPreference[]])
      .default(WORKER_DEFAULTS.backend),
    /**
     * Shown in the coordinator's logs; defaults to host:pid. As the protocol's hello takes it: at most
     * MAX_NAME_LENGTH characters, none of them a control character, line separator or bidi override.
     */
    name: z
      .string()
      .check((context) => {
        const problem = workerNameProblem(context.value);
        if (problem !== undefined)
          context.issues.push({ code: 'custom', input: context.value, message: problem });
      })
      .optional(),
    giveUpAfterMs: integerOption(1).default(WORKER_DEFAULTS.giveUpAfterMs),
    reconnectDelayMs: integerOption(1).default(WORKER_DEFAULTS.reconnectDelayMs),
    maxReconnectDelayMs: integerOption(1).default(WORKER_DEFAULTS.maxReconnectDelayMs),
    maxMessageBytes: integerOption(1).default(WORKER_DEFAULTS.maxMessageBytes),
    /**
     * Threads computing each shard (this one and threads - 1 more). Default: the cores this process may
     * use, for a worker alone on its host; `callosum train` divides them among its local workers.
     */
    threads: integerOption(1, MAX_WORKER_THREADS).default(() => defaultThreads()),
    /** A task module (`--task`) to load from this machine; without one the worker serves built-in models. */
    task: z.string().min(1).optional(),
    /** The run's shared secret, proved (never sent) on every connection. */
    token: z
      .string()
      .min(MIN_TOKEN_LENGTH, {
        error: `must be at least ${MIN_TOKEN_LENGTH} characters long (a coordinator refuses shorter ones)`,
      })
      .optional(),
    /** For wss://: the CA that signed the coordinator's certificate, and this worker's own for mutual TLS (PEM). */
    tls: z.strictObject({ ca: pem.optional(), cert: pem.optional(), key: pem.optional() }).optional(),
    /**
     * Ring topology: TLS between peers (PEM). This worker serves its peer port with `cert` and `key` and
     * presents them when it dials; both sides accept only certificates `ca` signed (mutual TLS). runWorker
     * tries them in a handshake with itself before it connects (peer-tls.ts).
     */
    peerTls: z.strictObject({ ca: pem, cert: pem, key: pem }).optional(),
    /**
     * Ring topology: the port this worker listens on for its peers (0: any free port) and the host it
     * listens on and tells them. Default host: this machine's address on its connection to the coordinator.
     */
    peerPort: integerOption(0, 65_535).default(WORKER_DEFAULTS.peerPort),
    advertiseHost: z
      .string()
      .regex(/^(\[?[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\]?|[A-Za-z0-9._-]+)$/, 'must be a host name or IP address')
      .optional(),
    /**
     * Fault injection, for testing a ring run's divergence detection only: corrupt this worker's replica
     * once it reaches this step (`CALLOSUM_FAULT_CORRUPT_REPLICA_AT` for `callosum worker`).
     */
    corruptReplicaAt: integerOption(0).optional(),
    /**
     * Fault injection, for testing a lost worker in a synchronised BatchNormalization pass only: this
     * worker stops itself (SIGSTOP) on receiving a pass of this step, as a frozen process would
     * (`CALLOSUM_FAULT_STOP_IN_BATCH_NORM_AT` for `callosum worker`).
     */
    stopInBatchNormAt: integerOption(0).optional(),
    /**
     * Fault injection, for testing a run stopped during an evaluation only: this worker stops itself
     * (SIGSTOP) on receiving a shard of this evaluation round (the coordinator process's evaluations,
     * counted from 0), so that the evaluation cannot finish (`CALLOSUM_FAULT_STOP_IN_EVALUATION_AT`).
     */
    stopInEvaluationAt: integerOption(0).optional(),
    log: z.custom<(line: string) => void>((value) => typeof value === 'function').optional(),
  })
  .check((context) => {
    const { reconnectDelayMs, maxReconnectDelayMs } = context.value;
    if (reconnectDelayMs > maxReconnectDelayMs) {
      context.issues.push({
        code: 'custom',
        input: reconnectDelayMs,
        path: ['reconnectDelayMs'],
        message: `must be at most maxReconnectDelayMs (${maxReconnectDelayMs}), got ${reconnectDelayMs}`,
      });
    }
  });

/** What runWorker accepts: only `url` is required. */
export type WorkerOptions = z.input<typeof workerOptionsSchema>;
/** The options with every default applied. */
export type WorkerSettings = z.output<typeof workerOptionsSchema>;
/** A ring worker's TLS towards its peers: the peers' CA, and this worker's certificate and key. */
export type PeerTls = NonNullable<WorkerSettings['peerTls']>;

/** The defaults applied and every option checked; throws INVALID_ARGUMENT naming the field. */
export function resolveWorkerOptions(options: WorkerOptions): WorkerSettings {
  return parseOptions(workerOptionsSchema, options, 'worker options');
}

/**
 * Why `name` cannot be a worker's name (the coordinator would refuse its hello, and retrying cannot
 * help), or undefined.
 */
export function workerNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  if (name.length > MAX_NAME_LENGTH) {
    return `must be at most ${MAX_NAME_LENGTH} characters long (the protocol's limit), got ${name.length}`;
  }
  // The protocol's rule for a printable name, which the coordinator applies to the hello.
  const problem = unprintableNameProblem(name);
  return problem === undefined ? undefined : `${problem}: it is written into the coordinator's log`;
}

/** Whether `text` is a ws:// or wss:// URL: the only addresses a coordinator can have. */
export function isWebSocketUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'ws:' || protocol === 'wss:';
  } catch {
    return false;
  }
}
