import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { HttpRoute } from '../transport/http-routes.js';
import type { WireTraffic } from '../transport/wire-traffic.js';
import type { WorkerState } from '../workers/connection.js';
import type { WorkerRegistry } from '../workers/registry.js';
import type { RunCounters } from './counters.js';
import type { CoordinatorEvent } from './events.js';
import type { TelemetrySink } from './telemetry.js';

/** What /metrics reads at scrape time besides the events. */
export interface PrometheusSources {
  readonly membership: Pick<WorkerRegistry, 'all'>;
  readonly counters: Readonly<RunCounters>;
  readonly traffic: WireTraffic;
}

const WORKER_STATES: readonly WorkerState[] = ['joining', 'syncing', 'healthy', 'suspect'];
const REJECTED_KINDS = {
  'rejected-message': 'message',
  'rejected-gradient': 'gradient',
  'rejected-evaluation': 'evaluation',
} as const;

/** Counters whose values the run keeps, read when scraped. */
const SCRAPED_COUNTERS: readonly (readonly [
  name: string,
  help: string,
  read: (counters: Readonly<RunCounters>, traffic: WireTraffic) => number,
])[] = [
  [
    'callosum_redone_shards_total',
    'Shards sent again after their worker was lost, late or wrong.',
    (counters) => counters.redoneShards,
  ],
  [
    'callosum_redone_steps_total',
    "Ring runs: how often a step's reduction among the workers was redone.",
    (counters) => counters.redoneSteps,
  ],
  [
    'callosum_late_shards_total',
    'Shards that passed the straggler deadline.',
    (counters) => counters.lateShards,
  ],
  [
    'callosum_discarded_messages_total',
    'Results that arrived for a round or shard no longer assigned to their sender, and ring failures of a reduction attempt no longer under way.',
    (counters) => counters.discardedMessages,
  ],
  ['callosum_evictions_total', 'Workers closed for misbehaving.', (counters) => counters.evictions],
  ['callosum_sent_bytes_total', 'Bytes of frames sent to workers.', (_, traffic) => traffic.sentBytes],
  [
    'callosum_received_bytes_total',
    'Bytes of frames received from workers.',
    (_, traffic) => traffic.receivedBytes,
  ],
];

/**
 * The run in the Prometheus text format (GET /metrics): a registry of its own per coordinator, fed by
 * the telemetry events (steps, evaluations, rejections, refused connections) and, at scrape time, by
 * the registry of workers, the run's counters and the bytes on the wire; plus Node's process metrics.
 */
export class PrometheusMetrics {
  private readonly registry = new Registry();
  private readonly step = this.gauge('callosum_step', 'Steps completed (the step the weights are at).');
  private readonly totalSteps = this.gauge('callosum_total_steps', 'Steps the run will take.');
  private readonly epoch = this.gauge('callosum_epoch', 'Epoch of the last step (0-based).');
  private readonly loss = this.gauge('callosum_loss', 'Training loss of the last step.');
  private readonly accuracy = this.gauge('callosum_accuracy', 'Training accuracy of the last step.');
  private readonly learningRate = this.gauge('callosum_learning_rate', 'Learning rate of the last step.');
  private readonly testLoss = this.gauge('callosum_test_loss', 'Test loss, last evaluation.');
  private readonly testAccuracy = this.gauge('callosum_test_accuracy', 'Test accuracy, last evaluation.');
  private readonly samples = this.counter('callosum_samples_total', 'Training samples since the start.');
  private readonly stepSeconds = new Histogram({
    name: 'callosum_step_duration_seconds',
    help: 'Duration of a training step: shards out, gradients back, reduced and applied.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly workerSeconds = {
    compute: this.workerHistogram('compute', 'computing its shards (as the worker measured)'),
    transfer: this.workerHistogram('transfer', 'moving its shards and gradients on the wire'),
    wait: this.workerHistogram('wait', 'waiting for the other workers after its last answer'),
  };
  private readonly rejected = new Counter({
    name: 'callosum_rejected_messages_total',
    help: 'Worker messages rejected: undecodable or invalid frames, unusable gradients or evaluations.',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  private readonly authFailures = this.counter(
    'callosum_auth_failures_total',
    'Connection attempts refused for a missing, wrong, expired or replayed proof of the token.',
  );
  private readonly refusedConnections = this.counter(
    'callosum_refused_connections_total',
    'Connections refused other than for the token: over the rate limit, or dropped in the TLS handshake.',
  );
  /** Worker names by id, to label their series with both. */
  private readonly names = new Map<string, string>();

  constructor(sources: PrometheusSources) {
    collectDefaultMetrics({ register: this.registry });
    // Every kind from the first scrape, at 0: rate() and alerts need the series before the first rejection.
    for (const kind of Object.values(REJECTED_KINDS)) this.rejected.inc({ kind }, 0);
    const { membership, counters, traffic } = sources;
    new Gauge({
      name: 'callosum_workers',
      help: 'Connected workers by state.',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const workers = membership.all();
        for (const state of WORKER_STATES)
          this.set({ state }, workers.filter((worker) => worker.state === state).length);
      },
    });
    for (const [name, help, read] of SCRAPED_COUNTERS)
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read(counters, traffic));
        },
      });
  }

  /** The telemetry sink that keeps the event-fed series current. */
  readonly sink: TelemetrySink = (event) => {
    switch (event.type) {
      case 'step':
        this.recordStep(event);
        break;
      case 'evaluation':
        this.testLoss.set(event.testLoss ?? Number.NaN);
        this.testAccuracy.set(event.testAccuracy ?? Number.NaN);
        break;
      case 'worker-joined':
        this.names.set(event.worker, event.name);
        break;
      case 'rejected-message':
      case 'rejected-gradient':
      case 'rejected-evaluation':
        this.rejected.inc({ kind: REJECTED_KINDS[event.type] });
        break;
      case 'auth-failure':
        this.authFailures.inc();
        break;
      case 'connection-refused':
        this.refusedConnections.inc();
        break;
    }
  };

  /** GET /metrics, guarded like /status. */
  readonly route: HttpRoute = {
    handle: (_, response) => {
      void this.registry.metrics().then(
        (text) => {
          response.setHeader('content-type', this.registry.contentType);
          response.end(text);
        },
        (error: unknown) => {
          response.statusCode = 500;
          response.end(String(error));
        },
      );
    },
  };

  private recordStep(event: Extract<CoordinatorEvent, { type: 'step' }>): void {
    this.step.set(event.step);
    this.totalSteps.set(event.totalSteps);
    this.epoch.set(event.epoch);
    this.loss.set(event.loss);
    this.accuracy.set(event.accuracy ?? Number.NaN);
    this.learningRate.set(event.learningRate);
    this.stepSeconds.observe(event.stepMs / 1000);
    for (const worker of event.perWorker) {
      const labels = { worker: worker.id, name: this.names.get(worker.id) ?? '' };
      this.samples.inc(worker.samples);
      this.workerSeconds.compute.observe(labels, worker.computeMs / 1000);
      this.workerSeconds.transfer.observe(labels, worker.transferMs / 1000);
      this.workerSeconds.wait.observe(labels, worker.waitMs / 1000);
    }
  }

  private gauge(name: string, help: string): Gauge {
    return new Gauge({ name, help, registers: [this.registry] });
  }

  private counter(name: string, help: string): Counter {
    return new Counter({ name, help, registers: [this.registry] });
  }

  private workerHistogram(phase: string, doing: string): Histogram<'worker' | 'name'> {
    return new Histogram({
      name: `callosum_worker_${phase}_seconds`,
      help: `Time per step a worker spent ${doing}.`,
      labelNames: ['worker', 'name'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
  }
}
