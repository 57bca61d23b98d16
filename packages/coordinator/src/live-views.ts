import { DashboardFeed } from './dashboard/dashboard-feed.js';
import { dashboardRoutes } from './dashboard/dashboard-routes.js';
import { PrometheusMetrics, type PrometheusSources } from './telemetry/prometheus.js';
import type { Telemetry } from './telemetry/telemetry.js';
import type { HttpRoutes } from './transport/http-routes.js';

/**
 * What a person or a scraper watches a run through on the coordinator's port: the dashboard (`/` and
 * its event stream at `/events`) and Prometheus (`/metrics`). Both are sinks of the run's telemetry.
 */
export interface LiveViews {
  readonly routes: HttpRoutes;
  /** Ends the dashboard's open streams, so that they close cleanly before the transport does. */
  close(): void;
}

/** The views, subscribed to `telemetry`. */
export function attachLiveViews(
  telemetry: Telemetry,
  sources: PrometheusSources & { readonly title: string },
): LiveViews {
  const dashboard = new DashboardFeed();
  telemetry.subscribe(dashboard.record);
  const prometheus = new PrometheusMetrics(sources);
  telemetry.subscribe(prometheus.sink);
  return {
    routes: { '/metrics': prometheus.route, ...dashboardRoutes(dashboard, sources.title) },
    close: () => dashboard.close(),
  };
}
