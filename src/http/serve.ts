import { createAdaptorServer } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import type { Env } from './deps.ts';

export interface Bound {
  readonly server: Server;
  /** Host and port actually bound (port 0 becomes the one the OS chose). */
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export interface BindOptions {
  readonly host: string;
  readonly port: number;
}

/** The only place that listens. */
export async function bind(app: Hono<Env>, options: BindOptions): Promise<Bound> {
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  // Node answers `Expect: 100-continue` by itself, before any route has looked
  // at the request. Hand such requests on unanswered instead: the report route
  // says 100 Continue only once it knows it wants the body (not 404, 417, 413),
  // and every other route answers without reading one.
  server.on('checkContinue', (req, res) => server.emit('request', req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
