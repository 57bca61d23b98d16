import { panel } from './panel.js';
import type { RunModel, WorkerRow } from './run-model.js';

const COLUMNS: readonly { readonly heading: string; readonly cell: (row: WorkerRow) => string }[] = [
  { heading: 'worker', cell: (row) => (row.name ? `${row.id} ${row.name}` : row.id) },
  { heading: 'state', cell: (row) => row.state },
  { heading: 'backend', cell: (row) => row.backend },
  { heading: 'address', cell: (row) => row.address },
  { heading: 'samples', cell: (row) => String(row.lastStep?.samples ?? '') },
  { heading: 'compute ms', cell: (row) => milliseconds(row.lastStep?.computeMs) },
  { heading: 'transfer ms', cell: (row) => milliseconds(row.lastStep?.transferMs) },
  { heading: 'wait ms', cell: (row) => milliseconds(row.lastStep?.waitMs) },
  { heading: 'late', cell: (row) => String(row.late) },
  { heading: 'evicted', cell: (row) => (row.evicted ? 'yes' : 'no') },
];

function milliseconds(value: number | undefined): string {
  return value === undefined ? '' : value.toFixed(1);
}

/** Every worker of the run, one row each (`data-worker`, `data-state`); samples and times are of its last step. */
export class WorkerTable {
  private readonly body: HTMLTableSectionElement;

  constructor(container: HTMLElement) {
    const table = document.createElement('table');
    const head = table.createTHead().insertRow();
    for (const column of COLUMNS) {
      const cell = document.createElement('th');
      cell.textContent = column.heading;
      head.append(cell);
    }
    this.body = table.createTBody();
    const title = 'Workers (samples and times: the last step each computed in)';
    panel(container, { id: 'workers', title, wide: true }).append(table);
  }

  render(model: RunModel): void {
    this.body.replaceChildren(
      ...model.workers.map((worker) => {
        const row = document.createElement('tr');
        row.dataset.worker = worker.id;
        row.dataset.name = worker.name;
        row.dataset.state = worker.state;
        for (const column of COLUMNS) row.insertCell().textContent = column.cell(worker);
        return row;
      }),
    );
  }
}
