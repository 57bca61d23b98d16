import { panel } from './panel.js';
import type { RunModel } from './run-model.js';

/** Entries shown, newest first. */
const SHOWN = 200;

/** The run's event log: joins, leaves, stragglers, evictions, redone shards, checkpoints, evaluations. */
export class EventList {
  private readonly list: HTMLOListElement;

  constructor(container: HTMLElement) {
    this.list = document.createElement('ol');
    panel(container, { id: 'events', title: 'Event log (newest first)', wide: true }).append(this.list);
  }

  render(model: RunModel): void {
    this.list.replaceChildren(
      ...model.log
        .slice(-SHOWN)
        .reverse()
        .map((entry) => {
          const item = document.createElement('li');
          item.dataset.kind = entry.kind;
          const time = document.createElement('time');
          time.dateTime = entry.time;
          time.textContent = new Date(entry.time).toLocaleTimeString();
          item.append(time, ` ${entry.text}`);
          return item;
        }),
    );
  }
}
