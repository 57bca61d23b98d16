/**
 * A test helper shared by packages (imported by relative path, like bench-support.mjs): serves a
 * directory over loopback HTTP, the way a browser or plain tfjs fetches a saved model.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface ServedDirectory {
  /** http://127.0.0.1:<port>, without a trailing slash. */
  readonly url: string;
  close(): Promise<void>;
}

/** Answers GET /<name> with the file `dir/<name>`, and 404 for anything it cannot read. */
export async function serveDirectory(dir: string): Promise<ServedDirectory> {
  const server = createServer(async (request, response) => {
    try {
      response.end(await readFile(join(dir, (request.url ?? '/').slice(1))));
    } catch {
      response.statusCode = 404;
      response.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
