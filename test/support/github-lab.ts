import { mkdtemp, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Config } from '../../src/cli/options.ts';
import { startDispatch, type Running } from '../../src/cli/start.ts';
import type { FakeGitHub, FakeGitHubOptions } from '../github/fake.ts';
import { startFakeGitHub } from '../github/fake.ts';
import { apiJob, apiJobs, type ApiJob, type Cleanup } from '../fleet/lab.ts';
import { FIRMWARE_HEADERS, send, type Sent } from '../fleet/http.ts';
import { loopbackAddress } from '../fleet/simulator.ts';

/**
 * dispatch in process, serving a release of a fake GitHub and filing its
 * reports there, over real sockets on loopback. Servers are simulated by
 * connecting from their own loopback addresses (127.0.0.2, …).
 */

export const OWNER = 'acme';
export const REPO = 'lab';
export const TAG = 'v1';
export const TOKEN = 'ghp_dispatchLabToken0000000000000000000';

export interface GitHubLabOptions {
  /** The repository is private (only the token sees it). */
  readonly private?: boolean;
  readonly fake?: FakeGitHubOptions;
  /** Set up the release, milestones, collaborators… before dispatch starts (it reads the release at start). */
  readonly setup: (fake: FakeGitHub) => void;
  readonly filters?: readonly string[];
  readonly downloadTimeoutMs?: number;
  /** Rule 4 (default: dispatch's 60 min). */
  readonly runTimeoutMs?: number;
  readonly maxReportBytes?: number;
  /** Octokit's write spacing (off unless a test is about it). */
  readonly throttle?: boolean;
}

const REQUEST_TIMEOUT_MS = 10_000;

export async function startGitHubLab(t: Cleanup, options: GitHubLabOptions) {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-github-flow-'));
  const fake = await startFakeGitHub(options.fake);
  const agents: http.Agent[] = [];
  let running: Running | undefined;
  /** The boot URL and origin of the dispatch running now (a restart moves it to another port). */
  const url = (): string => running!.url;
  const origin = (): string => new URL(url()).origin;
  // One hook, in order: dispatch (it may still be filing), the fake, the files.
  t.after(async () => {
    for (const agent of agents) agent.destroy();
    await running?.close();
    await fake.close();
    await rm(dir, { recursive: true, force: true });
    if (fake.errors.length > 0) throw new Error(`the fake GitHub itself broke: ${fake.errors.map(String).join('; ')}`);
  });
  fake.addRepo({ owner: OWNER, name: REPO, private: options.private ?? false });
  fake.addToken({ token: TOKEN, login: OWNER });
  options.setup(fake);

  const logs: string[] = [];
  const stateDir = join(dir, 'state');
  const config: Config = {
    dir: undefined,
    reports: join(dir, 'reports'),
    github: { owner: OWNER, repo: REPO, tag: TAG, apiUrl: fake.apiUrl, token: TOKEN },
    stateDir,
    host: '127.0.0.1',
    port: 0,
    path: '/dispatch',
    mdns: false,
    maxReportBytes: options.maxReportBytes ?? 1024 * 1024,
    downloadTimeoutMs: options.downloadTimeoutMs ?? 60_000,
    filters: options.filters ?? [],
    ...(options.runTimeoutMs === undefined ? {} : { runTimeoutMs: options.runTimeoutMs }),
  };
  const start = (extra: Partial<Config> = {}) =>
    startDispatch({ ...config, ...extra }, {
      log: (subsystem, message) => logs.push(`${subsystem}: ${message}`),
      env: {},
      gh: async () => undefined,
      throttle: { enabled: options.throttle ?? false },
      stopGraceMs: 500,
    });
  running = await start();
  const cacheDir = join(stateDir, 'cache', new URL(fake.apiUrl).hostname.replace(/[^A-Za-z0-9._-]+/g, '_'), OWNER, REPO);

  const jobs = () => apiJobs(origin(), REQUEST_TIMEOUT_MS);
  const job = (name: string) => apiJob(origin(), name, REQUEST_TIMEOUT_MS);

  /** Wait, bounded, for something that happens after an answer (a download, a filing). */
  const until = async (what: string, check: () => boolean | Promise<boolean>, limitMs = 10_000): Promise<number> => {
    const started = Date.now();
    while (!(await check())) {
      if (Date.now() - started > limitMs) throw new Error(`waited ${limitMs} ms for ${what}\n${logs.join('\n')}`);
      await delay(20);
    }
    return Date.now() - started;
  };

  /** One simulated server: index 0 is 127.0.0.2. HEAD and GET share a keep-alive connection, as EDK2's do. */
  const server = (index: number) => {
    const ip = loopbackAddress(index);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const request = (method: string, extra: { headers?: Record<string, string>; body?: string | Buffer; breakAfter?: number } = {}): Promise<Sent> =>
      send({
        url: url(),
        method,
        localAddress: ip,
        agent,
        timeoutMs: REQUEST_TIMEOUT_MS,
        ...(extra.headers === undefined ? {} : { headers: extra.headers }),
        ...(extra.body === undefined ? {} : { body: extra.body }),
        ...(extra.breakAfter === undefined ? {} : { breakAfter: extra.breakAfter }),
      });
    return {
      ip,
      head: () => request('HEAD', { headers: { ...FIRMWARE_HEADERS } }),
      get: (extra: { range?: string; breakAfter?: number } = {}) =>
        request('GET', {
          headers: extra.range === undefined ? { ...FIRMWARE_HEADERS } : { ...FIRMWARE_HEADERS, Range: extra.range },
          ...(extra.breakAfter === undefined ? {} : { breakAfter: extra.breakAfter }),
        }),
      /** A GET on a connection of its own, watched as it streams. */
      stream: (onFirstByte?: () => void) => streamGet(url(), ip, onFirstByte),
      /** `beacon boot`. */
      post: () => request('POST'),
      /** `beacon report`. */
      put: (report: unknown) => request('PUT', { body: JSON.stringify(report), headers: { 'Content-Type': 'application/json' } }),
    };
  };

  /** Files in the asset cache (complete ones and `.part` files). */
  const cached = async (): Promise<string[]> => readdir(cacheDir).catch(() => []);

  /**
   * Stop this dispatch and start another on the same state directory (on a
   * port of its own): what a restart after a crash or a stop finds.
   */
  const restart = async (extra: { readonly resume?: boolean; readonly downMs?: number } = {}): Promise<Running> => {
    await running?.close();
    if (extra.downMs) await delay(extra.downMs);
    running = await start(extra.resume === undefined ? {} : { resume: extra.resume });
    return running;
  };

  return {
    fake,
    /** The dispatch running now. */
    get running(): Running {
      return running!;
    },
    logs,
    stateDir,
    cacheDir,
    cached,
    jobs,
    job,
    until,
    server,
    restart,
  };
}

export type GitHubLab = Awaited<ReturnType<typeof startGitHubLab>>;

export interface Streamed {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  /** The body ended normally (as many bytes as Content-Length said). */
  readonly complete: boolean;
  /** Why it did not: the connection was reset, closed early, … */
  readonly error: string | null;
  /** ms (Date.now()) when the first body byte arrived; null when none did. */
  readonly firstByteAt: number | null;
}

/**
 * A firmware GET that never rejects: it resolves with what arrived and
 * whether the transfer ended properly, so a broken transfer can be examined.
 */
export function streamGet(url: string, localAddress: string, onFirstByte?: () => void): Promise<Streamed> {
  const target = new URL(url);
  return new Promise((resolve) => {
    let settled = false;
    const chunks: Buffer[] = [];
    let firstByteAt: number | null = null;
    let status = 0;
    let headers: http.IncomingHttpHeaders = {};
    const finish = (complete: boolean, error: string | null) => {
      if (settled) return;
      settled = true;
      resolve({ status, headers, body: Buffer.concat(chunks), complete, error, firstByteAt });
    };
    const req = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: 'GET', headers: { ...FIRMWARE_HEADERS }, agent: false, localAddress });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`nothing for ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (err) => finish(false, err.message));
    req.on('close', () => finish(false, 'connection closed before the end of the body'));
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      headers = res.headers;
      res.on('data', (chunk: Buffer) => {
        if (firstByteAt === null) {
          firstByteAt = Date.now();
          onFirstByte?.();
        }
        chunks.push(chunk);
      });
      res.on('end', () => finish(res.complete, res.complete ? null : 'body ended early'));
      res.on('aborted', () => finish(false, 'aborted'));
      res.on('error', (err) => finish(false, err.message));
    });
    req.end();
  });
}
