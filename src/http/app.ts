import { Hono } from 'hono';
import { jobsRoute } from './api.ts';
import { bootedRoute, reportRoute } from './beacon.ts';
import { bootRoute } from './boot.ts';
import type { AppDeps, Env } from './deps.ts';
import { peerAddress } from './peer.ts';

const PROTOCOL_METHODS = 'GET, HEAD, POST, PUT';

/** Build the app; serve.ts binds it. Hono answers HEAD through the GET route. */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  app.get(deps.path, bootRoute(deps));
  app.post(deps.path, bootedRoute(deps));
  app.put(deps.path, ...reportRoute(deps));
  app.all(deps.path, (c) => c.text('method not allowed\n', 405, { Allow: PROTOCOL_METHODS }));

  app.get('/api/jobs', jobsRoute(deps));
  app.all('/api/jobs', (c) => c.text('method not allowed\n', 405, { Allow: 'GET, HEAD' }));

  app.notFound((c) => c.text('not found\n', 404));
  app.onError((err, c) => {
    deps.log('http', `${c.req.method} ${c.req.path} from ${peerAddress(c) ?? 'unknown'} failed: ${err instanceof Error ? err.message : String(err)}`);
    return c.text('internal error\n', 500);
  });
  return app;
}
