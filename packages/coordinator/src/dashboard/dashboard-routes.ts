import { advertisedUrls } from '../transport/advertised-addresses.js';
import type { HttpRoutes } from '../transport/http-routes.js';
import type { DashboardFeed } from './dashboard-feed.js';
import { dashboardPage } from './dashboard-page.js';

/** The dashboard's endpoints: the page at / and its event stream. Neither is open: both show the run. */
export function dashboardRoutes(feed: DashboardFeed, title: string): HttpRoutes {
  return {
    '/': {
      handle: (_, response) => {
        response.setHeader('content-type', 'text/html; charset=utf-8');
        response.setHeader('cache-control', 'no-store');
        response.end(dashboardPage({ title }));
      },
    },
    '/events': { handle: (request, response) => feed.serve(request, response) },
  };
}

/** Where a browser finds the dashboard of a coordinator listening at `url` (ws:// or wss://). */
export function dashboardUrls(url: string, token: string | undefined): string[] {
  // With a token, the URL carries it once, as Jupyter's does; the page then holds the cookie it sets.
  const query = token === undefined ? '' : `?token=${encodeURIComponent(token)}`;
  return advertisedUrls(url).map((address) => `${address.replace(/^ws/, 'http')}/${query}`);
}
