import { readFileSync } from 'node:fs';
import { CallosumError, ErrorCodes } from '@callosum/core';
import type { RecordedEvent } from '../telemetry/events.js';

/** The browser bundle (dashboard/ built by esbuild); src/dashboard and dist/dashboard both sit two levels down. */
const ASSETS = new URL('../../dist/assets/', import.meta.url);

/** The page may run only its own inline code and open connections only to where it came from. */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'";

let assets: { readonly script: string; readonly style: string } | undefined;

function dashboardAssets(): { readonly script: string; readonly style: string } {
  try {
    assets ??= {
      script: readFileSync(new URL('dashboard.js', ASSETS), 'utf8'),
      style: readFileSync(new URL('dashboard.css', ASSETS), 'utf8'),
    };
    return assets;
  } catch (error) {
    throw new CallosumError(
      ErrorCodes.INTERNAL,
      `the dashboard's assets are missing from ${ASSETS.pathname}: build @callosum/coordinator`,
      { cause: error },
    );
  }
}

/** Text inlined in a `<script>` or `<style>` element that cannot end it early. */
function inlined(text: string, element: 'script' | 'style'): string {
  return text.replace(new RegExp(`</(${element})`, 'gi'), '<\\/$1');
}

/**
 * The dashboard as one HTML page: styles, script and, for a report, the run's events inline. Without
 * `events` the page follows the coordinator that served it (GET /events); with them it shows those.
 */
export function dashboardPage(options: {
  readonly title: string;
  readonly events?: readonly RecordedEvent[];
}) {
  const { script, style } = dashboardAssets();
  const title = options.title.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const data =
    options.events === undefined
      ? ''
      : `<script type="application/json" id="callosum-events">${JSON.stringify(options.events).replaceAll('<', '\\u003c')}</script>\n`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<title>${title}</title>
<style>${inlined(style, 'style')}</style>
</head>
<body>
${data}<script>${inlined(script, 'script')}</script>
</body>
</html>
`;
}
