// No imports: the dashboard's browser bundle formats log lines with this too.

/** How a worker is named in the log: "w2 (worker-2, 127.0.0.1:5000)", or "w2 (127.0.0.1:5000)" before its hello. */
export function workerLabel(worker: {
  readonly id: string;
  readonly name?: string | undefined;
  readonly address?: string | undefined;
}): string {
  const where = worker.address ?? 'address unknown';
  return `${worker.id}${worker.name ? ` (${worker.name}, ${where})` : ` (${where})`}`;
}

/** The reason a worker-left event gives when the worker closed its own connection. */
export const CONNECTION_CLOSED = 'connection closed';
