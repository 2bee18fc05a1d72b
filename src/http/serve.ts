import { getRequestListener, RequestError } from '@hono/node-server';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Hono } from 'hono';
import type { Log } from '../log.ts';
import type { Env } from './deps.ts';
import { closeServer, listenShared, openConnections } from './listen.ts';
import { normaliseAddress } from './peer.ts';
import { rejectionLog, type RejectionLog } from './rejection.ts';
import { loggableTarget } from './target.ts';

/**
 * What one client may take of the listener. A lab has tens of servers, each
 * using one or two connections at a time, on a LAN: every limit is far above
 * what a working firmware or beacon needs and far below what lets a stuck or
 * hostile client pin the listener.
 */
export interface HttpLimits {
  /**
   * All headers of a request within this, from the first byte (or from the
   * connection when nothing came). EDK2 sends them in one segment; a slow-loris
   * client trickling them is cut with 408.
   */
  readonly headersTimeoutMs: number;
  /** The whole request, body included (a PUT report), within this; else 408. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection closes after this (EDK2 sends its GET right after its HEAD). */
  readonly keepAliveTimeoutMs: number;
  /**
   * A connection on which nothing moves either way for this long is cut: a
   * client that stopped reading its download. A slow reader is never cut
   * while bytes still leave; the firmware resumes a cut download.
   */
  readonly idleTimeoutMs: number;
  /** Connections one peer address may hold at once; over it: 429, then close. */
  readonly maxConnectionsPerPeer: number;
}

export const DEFAULT_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  maxConnectionsPerPeer: 16,
};

/** How long a refused connection may stay open for its answer to be read. */
const LINGER_MS = 1_000;
/** Connections answered and closing, kept open a moment for the client to read (see `linger`). */
const lingering = new WeakSet<Socket>();

export interface Bound {
  readonly server: Server;
  /** Host and port actually bound (port 0 becomes the one the OS chose). */
  readonly address: AddressInfo;
  /** Connections open now, whichever listening socket took them. */
  connections(): Promise<number>;
  /**
   * Stop: accept nothing more, close idle connections at once, let answers
   * already being sent finish within `graceMs` (default 0), then cut the rest.
   */
  close(graceMs?: number): Promise<void>;
}

export interface BindOptions {
  readonly host: string;
  readonly port: number;
  readonly limits?: Partial<HttpLimits>;
  /** Where refusals made before any route runs (timeouts, malformed requests, the connection cap) are logged. */
  readonly log?: Log;
}

/** The only place that listens. */
export async function bind(app: Hono<Env>, options: BindOptions): Promise<Bound> {
  const limits: HttpLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const rejected: RejectionLog = options.log ? rejectionLog(options.log) : () => undefined;
  /** The request being handed to the app right now: the adapter's error handler is called synchronously for it. */
  let current: IncomingMessage | undefined;
  const handle = getRequestListener(app.fetch, {
    // The adapter could not make a Request of it (no Host, a target that is no URL).
    errorHandler: (err) => {
      const peer = current ? peerOf(current.socket) : 'unknown';
      if (!(err instanceof RequestError)) {
        options.log?.('http', `request from ${peer} failed: ${err instanceof Error ? err.message : String(err)}`);
        return new Response('internal error\n', { status: 500, headers: { 'Content-Type': 'text/plain; charset=UTF-8' } });
      }
      const reason = `bad request: ${err.message.toLowerCase()}`;
      rejected(peer, `${peer} ${current?.method ?? ''} ${loggableTarget(current?.url ?? '')} refused (400): ${reason}`);
      return new Response(`${reason}\n`, { status: 400, headers: { 'Content-Type': 'text/plain; charset=UTF-8' } });
    },
  });

  /** Every open connection: the answers in progress on it, and its latest request. */
  const open = new Map<Socket, { readonly answers: Set<ServerResponse>; last?: { readonly req: IncomingMessage; readonly res: ServerResponse } }>();
  const perPeer = new Map<string, number>();
  /** Connections over the cap: answered 429 and closing; their requests reach no route. */
  const refused = new WeakSet<Socket>();
  let closing = false;

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    if (refused.has(socket)) return;
    const state = open.get(socket);
    if (state) {
      state.answers.add(res);
      state.last = { req, res };
    }
    if (closing) res.setHeader('Connection', 'close');
    res.once('finish', () => {
      // Stopping: the connection ends with this answer instead of idling in keep-alive.
      if (closing) socket.end();
      closeGently(req, socket);
    });
    res.once('close', () => state?.answers.delete(res));
    current = req;
    try {
      handle(req, res).catch(() => res.destroy());
    } finally {
      current = undefined;
    }
  };

  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // A missing Host is refused by the adapter, with a reason and a log line, not by Node without either.
      requireHostHeader: false,
      // Node checks the two timeouts above only this often (default 30 s).
      connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    onRequest,
  );
  // A client that half-closes after its request (nc -N, some scripts) would
  // otherwise have its request aborted and its answer dropped: a report stored
  // and never acknowledged, so sent again. Node keeps this switch from the
  // start (undocumented, off by default): answer, then close.
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.setTimeout(limits.idleTimeoutMs, (socket: Socket) => {
    const answering = (open.get(socket)?.answers.size ?? 0) > 0;
    if (answering) rejected(peerOf(socket), `${peerOf(socket)} cut: nothing moved on its connection for ${seconds(limits.idleTimeoutMs)}`);
    socket.destroy();
  });
  // Node answers `Expect: 100-continue` by itself, before any route has looked
  // at the request. Hand such requests on unanswered instead: the report route
  // says 100 Continue only once it knows it wants the body (not 404, 417, 413),
  // and every other route answers without reading one.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res));

  // Before Node's own listener: a connection over the cap is answered here and
  // never reaches a route (Node still parses what it sends; nothing reads it).
  server.prependListener('connection', (socket: Socket) => {
    if (socket.remoteAddress === undefined) {
      socket.destroy();
      return;
    }
    const peer = peerOf(socket);
    const held = perPeer.get(peer) ?? 0;
    if (held >= limits.maxConnectionsPerPeer) {
      refused.add(socket);
      rejected(peer, `${peer} refused (429): already holds ${held} connections (limit ${limits.maxConnectionsPerPeer})`);
      answerAndClose(socket, 429, `too many connections from ${peer}: the limit is ${limits.maxConnectionsPerPeer}`, { 'Retry-After': '1' });
      return;
    }
    perPeer.set(peer, held + 1);
    open.set(socket, { answers: new Set() });
    socket.once('close', () => {
      open.delete(socket);
      const left = (perPeer.get(peer) ?? 1) - 1;
      if (left > 0) perPeer.set(peer, left);
      else perPeer.delete(peer);
    });
  });

  // A request Node could not read: malformed, headers too large, too slow.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Already answered and lingering (a refusal, or this same error again as
    // more of a large request comes in): what comes is read and dropped until
    // the client closes. Destroying it now would reset the connection before
    // the client has read its answer.
    if (lingering.has(socket)) return;
    const state = open.get(socket);
    const answers = state?.answers ?? new Set<ServerResponse>();
    const midAnswer = [...answers].some((res) => res.headersSent);
    // A route may answer before reading the body (417, 413): an error in the
    // rest of that body belongs to a request already answered.
    const answered = state?.last !== undefined && !state.last.req.complete && state.last.res.headersSent;
    if (!socket.writable || midAnswer || answered || err.code === 'ECONNRESET' || err.code === 'EPIPE') {
      // Gone, already answered, or in the middle of an answer: nothing clean left to say.
      socket.destroy();
      return;
    }
    const [status, reason] = clientErrorAnswer(err, limits);
    const peer = peerOf(socket);
    rejected(peer, `${peer} refused (${status}): ${reason}`);
    // An answer already begun by a route (a report whose body stopped coming)
    // is abandoned: this one goes out instead and the connection closes.
    for (const res of answers) res.setHeader('Connection', 'close');
    answerAndClose(socket, status, reason);
  });

  // Node would answer a bare 417 without a word in the log.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const peer = peerOf(req.socket);
    rejected(peer, `${peer} ${req.method} refused (417): unsupported Expect: ${loggableTarget(String(req.headers.expect))}`);
    const body = 'only Expect: 100-continue is understood\n';
    // Answered before the body: the client may still be sending it.
    res.once('finish', () => closeGently(req, req.socket));
    res.writeHead(417, { 'Content-Type': 'text/plain; charset=UTF-8', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' });
    res.end(body);
  });

  // No protocol switch is ours to make. Declined by Node instead, an upgrade
  // request with a body never completes (the parser stops at its end) and
  // would hold its connection until the request timeout.
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    const peer = peerOf(socket);
    rejected(peer, `${peer} ${req.method} ${loggableTarget(req.url ?? '')} refused (400): protocol upgrade not supported`);
    answerAndClose(socket, 400, 'protocol upgrade not supported');
  });

  // CONNECT is not ours to serve; Node would drop the connection without a word.
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    const peer = peerOf(socket);
    rejected(peer, `${peer} CONNECT refused (405): method not allowed`);
    answerAndClose(socket, 405, 'method not allowed', { Allow: 'GET, HEAD, POST, PUT' });
  });

  // A rack powering on at once connects all together: Node's default backlog
  // (511) overflows, and each dropped handshake costs its server a 1 s SYN retry.
  const listeners = await listenShared(server, { host: options.host, port: options.port });

  let closed: Promise<void> | undefined;
  return {
    server,
    address: server.address() as AddressInfo,
    connections: () => openConnections(listeners),
    close: (graceMs = 0) => {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        let cut: NodeJS.Timeout | undefined;
        // Stops accepting and closes keep-alive connections that are idle
        // (all of them: the other sockets hand theirs to this server).
        void Promise.all(listeners.map(closeServer)).then(() => {
          clearTimeout(cut);
          resolve();
        });
        // Connections with no answer under way (a request still arriving, or
        // none) have nothing to finish.
        for (const [socket, { answers }] of open) {
          if (answers.size === 0) socket.destroy();
          else for (const res of answers) if (!res.headersSent) res.setHeader('Connection', 'close');
        }
        cut = setTimeout(() => {
          for (const socket of open.keys()) socket.destroy();
          server.closeAllConnections();
        }, graceMs);
      });
      return closed;
    },
  };
}

function peerOf(socket: Socket): string {
  return socket.remoteAddress === undefined ? 'unknown' : normaliseAddress(socket.remoteAddress);
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** What a client error is answered with, as Node would answer it, with a reason. */
function clientErrorAnswer(err: NodeJS.ErrnoException & { reason?: string }, limits: HttpLimits): [number, string] {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, `request too slow: headers must arrive within ${seconds(limits.headersTimeoutMs)} and the whole request within ${seconds(Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs))}`];
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'request headers too large'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'chunk extensions too large'];
    case 'HPE_INVALID_EOF_STATE':
      return [400, 'the connection closed before the request was complete'];
    default:
      return [400, `malformed request${typeof err.reason === 'string' ? `: ${err.reason.toLowerCase()}` : ''}`];
  }
}

/**
 * Answer on the raw connection and close it. The client may still be
 * sending: the connection stays open (read and dropped) for a moment, since
 * closing with unread data would reset it before the answer is read.
 */
function answerAndClose(socket: Socket, status: number, reason: string, headers: Readonly<Record<string, string>> = {}): void {
  const body = `${reason}\n`;
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: text/plain; charset=UTF-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  linger(socket);
}

/**
 * Call once an answer has left (its response's 'finish'). An answer given
 * before the request's body was all in (413, 417) on a connection that closes
 * after it: Node closes the socket as soon as the answer is sent, and the
 * client, still sending, gets a reset that may wipe the answer before it reads
 * it. Close gently instead: keep reading (and dropping) what still comes for a
 * moment, as for refusals made before any route runs.
 */
function closeGently(req: IncomingMessage, socket: Socket): void {
  if (!req.complete && socket.listeners('finish').includes(socket.destroy)) {
    socket.removeListener('finish', socket.destroy);
    socket.once('finish', () => linger(socket));
  }
}

/**
 * A connection whose answer is sent (or on its way): keep reading (and
 * dropping) what the client still sends for a moment, so its last writes are
 * not answered with a reset, then close. It closes by itself sooner once the
 * client has ended its side too. A socket Node handed over (upgrade, CONNECT)
 * has no reader of its own: resumed here.
 */
function linger(socket: Socket): void {
  lingering.add(socket);
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
