import type { Server } from 'node:http';
import { createServer, type AddressInfo, type ListenOptions, type Server as NetServer } from 'node:net';

/**
 * Listening sockets on dispatch's one port. libuv (as in Node 20, 22 and 24)
 * takes one waiting connection per listening socket per turn of the event
 * loop (test/listen.test.ts shows it), and a turn under load also serves
 * every socket that has data: with a thousand servers powering on over 5 s,
 * dispatch's queue of connections not yet taken grew to 429 while its event
 * loop never stalled for more than 25 ms, and the first request on a new
 * connection waited up to a second. Sockets sharing the port (SO_REUSEPORT)
 * each take one per turn; the kernel spreads new connections over them.
 */
export const ACCEPTORS = 8;

/** Connections waiting to be accepted, per socket (a thousand servers booting together); the kernel caps it at net.core.somaxconn. */
export const LISTEN_BACKLOG = 4096;

/**
 * Node's `reusePort` came in 22.12 and 23.1 (earlier ones ignore it, and a
 * second socket on the port fails); Linux's SO_REUSEPORT spreads
 * connections over the sockets. Elsewhere: one socket, as before.
 */
export function sharesPort(version: string = process.versions.node, platform: string = process.platform): boolean {
  if (platform !== 'linux') return false;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** `reusePort` is in Node's own types from 22.12; dispatch builds against Node 20's. */
type SharingOptions = ListenOptions & { readonly reusePort?: boolean };

export interface ListenAt {
  readonly host: string;
  readonly port: number;
}

/**
 * Listen on `at` with `server` and, where the port can be shared, with
 * ACCEPTORS - 1 more sockets whose connections go to `server` as its own.
 * Resolves with every listening socket, `server` first.
 *
 * Any process of the same user may join a port that SO_REUSEPORT sockets
 * hold, and would silently take part of the lab's connections (a second
 * dispatch started on the same port). So a fixed port is first bound by a
 * plain socket, which fails as "address already in use" wherever anything
 * listens there already, shared or not; then it is let go and shared.
 */
export async function listenShared(server: Server, at: ListenAt, acceptors: number = sharesPort() ? ACCEPTORS : 1): Promise<readonly NetServer[]> {
  const base: ListenOptions = { host: at.host, port: at.port, backlog: LISTEN_BACKLOG };
  if (acceptors <= 1) {
    await listenOn(server, base);
    return [server];
  }
  if (at.port !== 0) {
    const probe = createServer();
    await listenOn(probe, { host: at.host, port: at.port, exclusive: true });
    await closeServer(probe);
  }
  // Port 0 needs no probe: the kernel never picks a port another socket holds.
  await listenOn(server, { ...base, reusePort: true });
  const shared: SharingOptions = { ...base, port: (server.address() as AddressInfo).port, reusePort: true };
  const all: NetServer[] = [server];
  for (let i = 1; i < acceptors; i += 1) {
    // What node:http sets on the sockets its own listener accepts.
    const acceptor = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => server.emit('connection', socket));
    try {
      await listenOn(acceptor, shared);
    } catch {
      // The port answers through the sockets that did listen.
      break;
    }
    // A failed accept is the server's error, as it is for its own socket.
    acceptor.on('error', (err) => server.emit('error', err));
    all.push(acceptor);
  }
  return all;
}

function listenOn(server: NetServer, options: SharingOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Connections open now on all of `listeners`. */
export async function openConnections(listeners: readonly NetServer[]): Promise<number> {
  const counts = await Promise.all(listeners.map((l) => new Promise<number>((resolve, reject) => l.getConnections((err, n) => (err ? reject(err) : resolve(n))))));
  return counts.reduce((a, b) => a + b, 0);
}

/** Stop listening; resolves once every connection this socket accepted has closed. */
export function closeServer(server: NetServer): Promise<void> {
  return new Promise<void>((resolve) => server.close(() => resolve()));
}
