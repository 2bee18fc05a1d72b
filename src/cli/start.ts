import { randomUUID } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { ghAuthToken, resolveToken, TOKEN_HELP } from '../github/auth.ts';
import type { GitHub } from '../github/index.ts';
import { bind, createApp } from '../http/index.ts';
import { Queue, replayChanges, systemClock, type Clock, type QueueState } from '../jobs/index.ts';
import type { Log } from '../log.ts';
import { createAdvertiser } from '../mdns/index.ts';
import { checkReportDirectory, directorySink, GitHubSink, Outbox, ReportError, Reporter, type ReportSink } from '../report/index.ts';
import { builtinEfi, directorySource, githubSource, SourceError, type Workload, type WorkloadSource } from '../source/index.ts';
import { AssetCache, identityMismatch, lastRunElsewhere, loadRun, runFolder, StateWriter, type SourceIdentity } from '../store/index.ts';
import { UsageError, type Config } from './options.ts';
import { formatDuration } from './units.ts';

export interface Running {
  /** The URL as bound, e.g. http://127.0.0.1:8080/dispatch. */
  readonly url: string;
  /** URLs servers can use: the bound one, or one per interface address when bound to every address. */
  readonly bootUrls: readonly string[];
  /** Where the workloads come from and where reports go, in words. */
  readonly source: string;
  readonly reports: string;
  readonly queue: Queue;
  readonly reporter: Reporter;
  /** Release assets on disk, when a release is the source. */
  readonly cache: AssetCache | undefined;
  close(): Promise<void>;
}

export interface StartDeps {
  readonly log: Log;
  readonly clock?: Clock;
  /** Where GITHUB_TOKEN and GH_TOKEN are read. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** `gh auth token`, replaceable in tests. */
  readonly gh?: (host: string) => Promise<string | undefined>;
  /** GitHub's write spacing; tests turn it off. */
  readonly throttle?: { readonly enabled: boolean };
  /** How long a stop waits for reports being filed before leaving them in the outbox. */
  readonly stopGraceMs?: number;
  /** dispatch's version, advertised on mDNS. */
  readonly version?: string;
}

/** No token anywhere: say how to get one. */
export class TokenMissing extends UsageError {
  constructor() {
    super(`no GitHub token found.\n${TOKEN_HELP}`);
  }
}

/** Wire the real adapters together: source → queue → http → report. */
export async function startDispatch(config: Config, deps: StartDeps): Promise<Running> {
  const clock = deps.clock ?? systemClock;
  const { log } = deps;
  const poweroff = await builtinEfi('poweroff.efi');

  const github = config.github ? await connect(config, deps) : undefined;
  let cache: AssetCache | undefined;
  let source: WorkloadSource;
  if (github && config.github?.tag !== undefined) {
    cache = new AssetCache(join(config.stateDir, 'cache', stateKey(github)), (asset, signal) => github.assetBytes(asset.id, signal), log);
    source = githubSource({ github, tag: config.github.tag, filters: config.filters, cache, log: (m) => log('source', m) });
  } else {
    source = directorySource({ dir: config.dir ?? '.', filters: config.filters, log: (m) => log('source', m) });
  }
  const workloads = await source.load();

  let sink: ReportSink;
  if (github) {
    if (!config.github?.tag) await github.checkAccess().catch((err: Error) => {
      throw new SourceError(err.message, { cause: err });
    });
    const outboxDir = join(config.stateDir, 'outbox', stateKey(github));
    // Reports are acknowledged only once they are in the outbox: find out now, not at the first report.
    await checkReportDirectory(outboxDir);
    sink = new GitHubSink({ github, outbox: new Outbox(outboxDir, log), log, now: () => clock.now() });
  } else {
    await checkReportDirectory(config.reports);
    sink = directorySink(config.reports, log);
  }

  const identity = sourceIdentity(config, github, workloads);
  const folder = runFolder(config.stateDir, identity);
  const restore = config.resume ? await savedRun(config.stateDir, folder, identity, log) : undefined;
  const runTimeoutMs = config.runTimeoutMs ?? 60 * 60_000;
  let queue: Queue;
  try {
    queue = new Queue(workloads, { clock, downloadTimeoutMs: config.downloadTimeoutMs, runTimeoutMs, runTimeoutLabel: formatDuration(runTimeoutMs), run: randomUUID(), ...(restore ? { restore } : {}) });
  } catch (err) {
    throw new UsageError(`cannot resume the run saved in ${folder}: ${(err as Error).message}; start without --resume to begin afresh`, { cause: err });
  }
  // Every transition is saved (a fresh run replaces what was there); answers that promise a state wait for it.
  const state = new StateWriter(folder, identity, { snapshot: () => queue.persistJson(), changes: () => queue.changesJson() }, (err) => log('state', `cannot save the run state: ${err.message}`));
  queue.onChange(() => state.changed());
  state.changed();
  const persisted = () => state.flush();
  const reporter = new Reporter({ queue, sink, clock, log, persisted });
  const stopGraceMs = deps.stopGraceMs ?? 5_000;
  const stopEarly = async () => {
    queue.stop();
    cache?.close();
    await reporter.stop(0);
  };
  try {
    await persisted();
  } catch (err) {
    await stopEarly();
    throw new UsageError(`cannot save the run state in ${folder}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`, { cause: err });
  }
  log('source', `${workloads.length} workload(s) from ${source.description}: ${workloads.map((w) => w.name).join(', ')}`);
  log('report', `reports go to ${sink.description}`);
  // Before any server is answered: a resumed queue learns what was filed while it was away.
  await reporter.recover().catch(async (err: Error) => {
    await stopEarly();
    throw new ReportError(`cannot read the outbox: ${err.message}`, { cause: err });
  });
  const app = createApp({ queue, reports: reporter, path: config.path, maxReportBytes: config.maxReportBytes, poweroff, log, persisted });
  let bound;
  try {
    bound = await bind(app, { host: config.host, port: config.port, log });
  } catch (err) {
    await stopEarly();
    throw new Error(`cannot listen on ${config.host}:${config.port}: ${listenError(err)}`, { cause: err });
  }
  const port = bound.address.port;
  const url = `http://${hostForUrl(config.host)}:${port}${config.path}`;
  const advertiser = config.mdns
    ? createAdvertiser({ port, path: config.path, version: deps.version ?? 'unknown', description: source.description, bindHost: config.host, log: (m) => log('mdns', m) })
    : undefined;
  await advertiser?.start();
  return {
    url,
    bootUrls: bootUrls(config.host, port, config.path),
    source: source.description,
    reports: sink.description,
    queue,
    reporter,
    cache,
    close: async () => {
      await advertiser?.stop();
      await bound.close(stopGraceMs);
      cache?.close();
      await reporter.stop(stopGraceMs);
      // What the last filings changed, saved for a --resume; then the timers stop.
      await state.close().catch((err: Error) => log('state', `the last save of the run state failed: ${err.message}`));
      queue.stop();
    },
  };
}

/**
 * What this run is of, for --resume: the source (GitHub API host without the
 * port, owner, repo and tag; or the directory's absolute path) keys the
 * folder; where its reports go, the filters and each workload's fingerprint
 * (asset id and updated_at; file name, size and mtime) must match too.
 */
function sourceIdentity(config: Config, github: GitHub | undefined, workloads: readonly Workload[]): SourceIdentity {
  const host = (apiUrl: string) => new URL(apiUrl).hostname;
  const from = github && config.github?.tag !== undefined
    ? `release ${config.github.tag} of ${config.github.owner}/${config.github.repo} on ${host(github.apiUrl)}`
    : `directory ${resolve(config.dir ?? '.')}`;
  const to = github ? `issues of ${github.owner}/${github.repo} on ${host(github.apiUrl)}` : `files in ${resolve(config.reports)}`;
  const filters = config.filters.length > 0 ? config.filters.map((f) => JSON.stringify(f)).join(', ') : 'none';
  return { where: from, items: [`reports: ${to}`, `filters: ${filters}`, ...workloads.map((w) => w.fingerprint ?? `${w.name} ${w.size} bytes`)] };
}

/** The saved run to continue, checked to be this one; undefined (said in the log) when there is none. */
async function savedRun(stateDir: string, folder: string, identity: SourceIdentity, log: Log): Promise<QueueState | undefined> {
  let saved;
  try {
    saved = await loadRun<QueueState>(folder);
  } catch (err) {
    throw new UsageError(`cannot resume: ${(err as Error).message}`, { cause: err });
  }
  if (!saved) {
    // The run to continue was of something else: say so rather than start a new one unasked.
    const other = await lastRunElsewhere(stateDir, folder);
    if (other !== undefined) throw new UsageError(`cannot resume: the last run saved in ${stateDir} was of ${other}, not ${identity.where}; start without --resume to begin a new run`);
    log('state', `--resume: no saved run in ${stateDir}: starting afresh`);
    return undefined;
  }
  const why = identityMismatch(saved.identity, identity);
  if (why) throw new UsageError(`cannot resume: ${why}; start without --resume to begin afresh`);
  if (saved.queue?.version !== 1 || !Array.isArray(saved.queue.jobs)) throw new UsageError(`cannot resume: the saved run in ${folder} is damaged; start without --resume to begin afresh`);
  let queue: QueueState;
  try {
    queue = replayChanges(saved.queue, saved.changes);
  } catch (err) {
    throw new UsageError(`cannot resume: the saved run's journal in ${folder} is damaged (${(err as Error).message}); start without --resume to begin afresh`, { cause: err });
  }
  log('state', `--resume: continuing run ${queue.run} of ${identity.where}, saved ${new Date(queue.savedAt).toISOString()}`);
  return queue;
}

/** Find a token (never logged, only where it came from) and build the client. */
async function connect(config: Config, deps: StartDeps): Promise<GitHub> {
  const settings = config.github!;
  const found = await resolveToken({ flag: settings.token, env: deps.env ?? process.env, gh: deps.gh ?? ghAuthToken }, settings.apiUrl);
  if (!found) throw new TokenMissing();
  deps.log('github', `using the token from ${found.from} for ${settings.apiUrl}`);
  // Loaded here, not at start: octokit and undici are some 10 MB of memory
  // that a run without GitHub (--dir and --reports) never uses.
  const { GitHub } = await import('../github/client.ts');
  return new GitHub({
    apiUrl: settings.apiUrl,
    token: found.token,
    owner: settings.owner,
    repo: settings.repo,
    log: deps.log,
    ...(deps.throttle ? { throttle: deps.throttle } : {}),
  });
}

/**
 * One folder per GitHub host and repository, so two labs never share an
 * outbox. The host name without the port: the same GitHub restarted on
 * another port must still find the reports it has not filed.
 */
function stateKey(github: GitHub): string {
  const safe = (text: string) => text.replace(/[^A-Za-z0-9._-]+/g, '_');
  return join(safe(new URL(github.apiUrl).hostname), safe(github.owner), safe(github.repo));
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
