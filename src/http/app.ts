import { Hono, type Context } from 'hono';
import { jobsRoute, metricsRoute } from './api.ts';
import { bootedRoute, reportRoute } from './beacon.ts';
import { bootRoute } from './boot.ts';
import type { AppDeps, Env } from './deps.ts';
import { LIVE_PAGE } from './page.ts';
import { peerAddress } from './peer.ts';
import { Rejection, rejectionLog } from './rejection.ts';
import { loggableTarget, spelledPath } from './target.ts';

const PROTOCOL_METHODS = 'GET, HEAD, POST, PUT';

/** Build the app; serve.ts binds it. Hono answers HEAD through the GET route. */
export function createApp(deps: AppDeps): Hono<Env> {
  const rejected = rejectionLog(deps.log);
  const app = new Hono<Env>();

  // Paths are compared as spelled. Hono decodes percent-escapes and the URL
  // parser resolves dot segments, which would make `/%64ispatch` and
  // `/x/../dispatch` the boot path; EDK2 sends the configured path verbatim,
  // so any other spelling is a path that does not exist. The query is ignored.
  app.use('*', async (c, next) => {
    const raw = c.env?.incoming?.url;
    if (raw !== undefined && spelledPath(raw) !== c.req.path) throw new Rejection(404, 'not found');
    await next();
  });

  // The boot route logs only its refusals (a resume from a server that holds
  // nothing), each line starting with the peer: they go through the same
  // per-peer limit, so a client repeating one cannot flood the log.
  app.get(deps.path, bootRoute({ ...deps, log: (_subsystem, message) => rejected(message.slice(0, message.indexOf(' ')), message) }));
  app.post(deps.path, bootedRoute(deps));
  app.put(deps.path, reportRoute(deps));
  app.all(deps.path, () => {
    throw new Rejection(405, 'method not allowed', { Allow: PROTOCOL_METHODS });
  });

  app.get('/api/jobs', jobsRoute(deps));
  app.all('/api/jobs', () => {
    throw new Rejection(405, 'method not allowed', { Allow: 'GET, HEAD' });
  });
  app.get('/metrics', metricsRoute(deps));
  app.all('/metrics', () => {
    throw new Rejection(405, 'method not allowed', { Allow: 'GET, HEAD' });
  });
  // The protocol path wins if it was set to `/`.
  if (deps.path !== '/') {
    app.get('/', (c) => c.html(LIVE_PAGE, 200, { 'Cache-Control': 'no-store' }));
    app.all('/', () => {
      throw new Rejection(405, 'method not allowed', { Allow: 'GET, HEAD' });
    });
  }

  // The one place a refusal becomes an answer and a log line.
  const refuse = (c: Context<Env>, rejection: Rejection) => {
    const peer = peerAddress(c) ?? 'unknown';
    rejected(peer, `${peer} ${c.req.method} ${loggableTarget(c.env?.incoming?.url ?? c.req.path)} refused (${rejection.status}): ${rejection.reason}`);
    return c.text(`${rejection.reason}\n`, rejection.status, { ...rejection.headers });
  };
  app.notFound((c) => refuse(c, new Rejection(404, 'not found')));
  app.onError((err, c) => {
    if (err instanceof Rejection) return refuse(c, err);
    // The body stopped arriving (the client went away, or the listener cut a
    // body that took too long): the client's doing, not ours.
    const incoming = c.env?.incoming;
    if (incoming?.complete === false) return refuse(c, new Rejection(400, 'the request body ended before it was complete', {}, { cause: err }));
    deps.log('http', `${c.req.method} ${c.req.path} from ${peerAddress(c) ?? 'unknown'} failed: ${err instanceof Error ? err.message : String(err)}`);
    return c.text('internal error\n', 500);
  });
  return app;
}
