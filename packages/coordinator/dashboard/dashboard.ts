import type { RecordedEvent } from '../src/telemetry/events.js';
import { RunCharts } from './charts.js';
import { EventList } from './event-list.js';
import { followLive } from './live-feed.js';
import { type Connection, RunHeader } from './run-header.js';
import { RunModel } from './run-model.js';
import { Timeline } from './timeline.js';
import { WorkerTable } from './worker-table.js';

// The page: a report carries its run's events inline (#callosum-events); otherwise it follows the
// coordinator that served it.
const header = new RunHeader(document.body);
const main = document.createElement('main');
document.body.append(main);
const panels = [new RunCharts(main), new WorkerTable(main), new Timeline(main), new EventList(main)];
const show = (model: RunModel, connection: Connection) => {
  header.render(model, connection);
  for (const panel of panels) panel.render(model);
};

const embedded = document.getElementById('callosum-events');
if (embedded === null) {
  followLive(show);
} else {
  const model = new RunModel();
  for (const event of JSON.parse(embedded.textContent ?? '[]') as RecordedEvent[]) model.apply(event);
  show(model, 'report');
}
