import { percent, type RunModel } from './run-model.js';

/** How the page gets its events: a report's are inline; a live page's stream is up, coming back, or gone. */
export type Connection = 'report' | 'live' | 'reconnecting' | 'disconnected';

/** The page's title line: where the run is, its latest figures, and whether the page is live. */
export class RunHeader {
  private readonly status: HTMLElement;
  private readonly figures: HTMLElement;

  constructor(container: HTMLElement) {
    const header = document.createElement('header');
    const title = document.createElement('h1');
    title.textContent = document.title;
    this.status = document.createElement('span');
    this.status.id = 'status';
    this.figures = document.createElement('p');
    this.figures.id = 'progress';
    header.append(title, this.status, this.figures);
    container.append(header);
  }

  render(model: RunModel, connection: Connection): void {
    const outcome = model.outcome;
    const state =
      outcome.kind === 'finished'
        ? 'finished'
        : outcome.kind === 'stopped'
          ? `stopped (${outcome.reason})`
          : connection === 'report'
            ? 'unfinished'
            : connection;
    this.status.textContent = state;
    this.status.dataset.state = outcome.kind === 'running' ? connection : outcome.kind;
    const step = model.lastStep;
    const healthy = model.workers.filter((worker) => worker.state !== 'gone').length;
    this.figures.textContent =
      step === undefined
        ? `waiting for the first step; ${healthy} workers`
        : [
            `step ${step.step} of ${step.totalSteps}`,
            `epoch ${step.epoch + 1}`,
            `loss ${step.loss.toFixed(4)}`,
            ...(step.accuracy === null ? [] : [`accuracy ${percent(step.accuracy)}`]),
            `${Math.round(step.samplesPerSecond ?? 0).toLocaleString('en-US')} samples/s`,
            `${healthy} workers`,
            `redone shards ${step.redoneShards}${step.redoneSteps > 0 ? `, redone steps ${step.redoneSteps}` : ''}, late ${step.lateShards}, evictions ${step.evictions}`,
          ].join(' · ');
  }
}
