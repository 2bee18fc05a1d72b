import { networkInterfaces } from 'node:os';
import { systemClock, Queue, type Clock } from '../jobs/index.ts';
import { bind, createApp } from '../http/index.ts';
import type { Log } from '../log.ts';
import { checkReportDirectory, directorySink, Reporter } from '../report/index.ts';
import { builtinEfi, directorySource } from '../source/index.ts';
import type { Config } from './options.ts';

export interface Running {
  /** The URL as bound, e.g. http://127.0.0.1:8080/dispatch. */
  readonly url: string;
  /** URLs servers can use: the bound one, or one per interface address when bound to every address. */
  readonly bootUrls: readonly string[];
  readonly queue: Queue;
  readonly reporter: Reporter;
  close(): Promise<void>;
}

export interface StartDeps {
  readonly log: Log;
  readonly clock?: Clock;
}

/** Wire the real adapters together: source → queue → http → report. */
export async function startDispatch(config: Config, deps: StartDeps): Promise<Running> {
  const clock = deps.clock ?? systemClock;
  const { log } = deps;
  const poweroff = await builtinEfi('poweroff.efi');
  const source = directorySource({ dir: config.dir, filters: config.filters, log: (m) => log('source', m) });
  const workloads = await source.load();
  await checkReportDirectory(config.reports);

  const queue = new Queue(workloads, { clock, downloadTimeoutMs: config.downloadTimeoutMs });
  const sink = directorySink(config.reports);
  const reporter = new Reporter({ queue, sink, clock, log });
  const app = createApp({ queue, reports: reporter, path: config.path, maxReportBytes: config.maxReportBytes, poweroff, log });
  let bound;
  try {
    bound = await bind(app, { host: config.host, port: config.port, maxBodyBytes: config.maxReportBytes, log });
  } catch (err) {
    queue.stop();
    reporter.stop();
    throw new Error(`cannot listen on ${config.host}:${config.port}: ${listenError(err)}`, { cause: err });
  }
  const port = bound.address.port;
  const url = `http://${hostForUrl(config.host)}:${port}${config.path}`;
  log('source', `${workloads.length} workload(s) from ${source.description}: ${workloads.map((w) => w.name).join(', ')}`);
  log('report', `reports go to ${sink.description}`);
  return {
    url,
    bootUrls: bootUrls(config.host, port, config.path),
    queue,
    reporter,
    close: async () => {
      await bound.close();
      queue.stop();
      reporter.stop();
      await reporter.idle();
    },
  };
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** A wildcard bind is no URL a server can use: list the machine's real addresses instead. */
function bootUrls(host: string, port: number, path: string): string[] {
  if (host !== '0.0.0.0' && host !== '::') return [`http://${hostForUrl(host)}:${port}${path}`];
  const urls: string[] = [];
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.internal || (host === '0.0.0.0' && a.family !== 'IPv4')) continue;
      if (a.family === 'IPv6' && a.address.startsWith('fe80')) continue;
      urls.push(`http://${hostForUrl(a.address)}:${port}${path}`);
    }
  }
  return urls.length > 0 ? urls : [`http://127.0.0.1:${port}${path}`];
}

function listenError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return 'address already in use';
  if (code === 'EADDRNOTAVAIL') return 'no such address on this machine';
  if (code === 'EACCES') return 'permission denied (ports below 1024 need privileges)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'unknown host';
  return err instanceof Error ? err.message : String(err);
}
