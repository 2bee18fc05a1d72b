import { createAdaptorServer } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import type { Log } from '../log.ts';
import type { Env } from './deps.ts';
import { normaliseAddress } from './peer.ts';

export interface Bound {
  readonly server: Server;
  /** Host and port actually bound (port 0 becomes the one the OS chose). */
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export interface BindOptions {
  readonly host: string;
  readonly port: number;
  /** Refuse `Expect: 100-continue` uploads above this size before their body is sent. */
  readonly maxBodyBytes: number;
  readonly log: Log;
}

/** The only place that listens. */
export async function bind(app: Hono<Env>, options: BindOptions): Promise<Bound> {
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  // Node answers `Expect: 100-continue` by itself; answering 413 instead spares
  // a client (curl does this above 1 MiB) sending a body we would refuse.
  server.on('checkContinue', (req, res) => {
    const length = Number(req.headers['content-length']);
    if (Number.isFinite(length) && length > options.maxBodyBytes) {
      options.log('http', `${normaliseAddress(req.socket.remoteAddress ?? 'unknown')} ${req.method} refused (413): ${length} bytes announced, over ${options.maxBodyBytes}`);
      res.writeHead(413, { 'Content-Type': 'text/plain; charset=UTF-8', Connection: 'close' });
      res.end(`report too large: the limit is ${options.maxBodyBytes} bytes\n`);
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
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
