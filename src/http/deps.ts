import type { HttpBindings } from '@hono/node-server';
import type { Queue } from '../jobs/index.ts';
import type { Log } from '../log.ts';
import type { Report } from '../report/index.ts';
import type { Workload } from '../source/index.ts';

/** Everything the HTTP layer needs, injected: the app owns no state of its own. */
export interface AppDeps {
  readonly queue: Queue;
  readonly reports: { submit(id: number, report: Report): Promise<void> };
  /** The one protocol path (--path). */
  readonly path: string;
  /** Largest PUT body accepted (--max-report-bytes). */
  readonly maxReportBytes: number;
  /** What a server with nothing left to run boots. */
  readonly poweroff: Workload;
  readonly log: Log;
  /** Resolves once the queue's state is saved (--resume); a `beacon boot` is answered only then. */
  readonly persisted?: () => Promise<void>;
}

/** Node bindings when served by @hono/node-server; absent under `app.request()`. */
export type Env = { Bindings: Partial<HttpBindings> };
