import type { IncomingMessage, ServerResponse } from 'node:http';

/** One GET endpoint of the coordinator's HTTP side. */
export interface HttpRoute {
  /** Open to anyone (the health probes); otherwise only to requests the transport's `authorizeRead` admits. */
  readonly open?: boolean;
  handle(request: IncomingMessage, response: ServerResponse): void;
}

/** Endpoints by path (without the query string). */
export type HttpRoutes = Readonly<Record<string, HttpRoute>>;

export interface RunEndpoints {
  /** GET /readyz answers 200 while this is true, 503 otherwise. */
  readonly ready: () => boolean;
  /** JSON served at GET /status. */
  readonly status: () => unknown;
}

/** The coordinator's read-only endpoints: the probes (open) and the run's status. */
export function runRoutes(run: RunEndpoints): HttpRoutes {
  return {
    '/healthz': { open: true, handle: (_, response) => response.end('ok') },
    '/readyz': {
      open: true,
      handle: (_, response) => {
        response.statusCode = run.ready() ? 200 : 503;
        response.end(response.statusCode === 200 ? 'ready' : 'not ready');
      },
    },
    '/status': {
      handle: (_, response) => {
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify(run.status()));
      },
    },
  };
}
