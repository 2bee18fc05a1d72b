import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startDispatch, type Running } from '../../src/cli/start.ts';
import type { JobView } from '../../src/jobs/index.ts';
import { FIRMWARE_HEADERS, send, type Sent } from './http.ts';
import { loopbackAddress, sha256 } from './simulator.ts';

/** A job as GET /api/jobs shows it. */
export interface ApiJob {
  readonly name: string;
  readonly state: string;
  readonly ip: string | null;
  readonly size: number;
  readonly contentType: string;
  readonly attempts: number;
  readonly since: string;
  readonly reports: readonly string[];
  readonly reason: string | null;
}

export interface LabOptions {
  /** Workload files to serve: name → size (random bytes) or the bytes themselves. */
  readonly workloads: Readonly<Record<string, number | Buffer>>;
  readonly downloadTimeoutMs?: number;
  /** Rule 4 (default: dispatch's 60 min). */
  readonly runTimeoutMs?: number;
  readonly maxReportBytes?: number;
  /** Where dispatch listens (default 127.0.0.1); clients still connect to 127.0.0.1. */
  readonly host?: string;
}

/** Something with `after`, as node:test's TestContext has. */
export interface Cleanup {
  after(fn: () => unknown): void;
}

const REQUEST_TIMEOUT_MS = 5_000;

/** Every job, as `GET /api/jobs` lists it. */
export async function apiJobs(origin: string, timeoutMs: number): Promise<ApiJob[]> {
  const answer = await send({ url: `${origin}/api/jobs`, method: 'GET', timeoutMs });
  if (answer.status !== 200) throw new Error(`/api/jobs answered ${answer.status}`);
  return (JSON.parse(answer.body.toString('utf8')) as { jobs: ApiJob[] }).jobs;
}

/** One job by name, from `GET /api/jobs`. */
export async function apiJob(origin: string, name: string, timeoutMs: number): Promise<ApiJob> {
  const found = (await apiJobs(origin, timeoutMs)).find((j) => j.name === name);
  if (!found) throw new Error(`no job ${name}`);
  return found;
}

/** A running dispatch on a port of its own, serving files from a scratch directory; closed when the test ends. */
export async function startLab(t: Cleanup, options: LabOptions) {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-lab-'));
  const opened: Running[] = [];
  // One hook, in order: stop dispatch (it may still be filing), then remove its files.
  t.after(async () => {
    for (const running of opened) await running.close();
    await rm(dir, { recursive: true, force: true });
  });
  const workloads = join(dir, 'workloads');
  const reports = join(dir, 'reports');
  await mkdir(workloads);
  const bytes = new Map<string, Buffer>();
  const made = new Set<string>();
  for (const [name, spec] of Object.entries(options.workloads)) {
    let content = typeof spec === 'number' ? randomBytes(spec) : spec;
    // Tests tell downloads apart by their bytes, so random workloads must differ (two random 1-byte files match one time in 256).
    for (let tries = 0; typeof spec === 'number' && spec > 0 && made.has(sha256(content)); tries += 1) {
      if (tries === 1000) throw new Error(`cannot make ${name} differ from the other workloads of ${spec} bytes`);
      content = randomBytes(spec);
    }
    made.add(sha256(content));
    bytes.set(name, content);
    await writeFile(join(workloads, name), content);
  }
  const logs: string[] = [];
  const config = {
    dir: workloads,
    reports,
    github: undefined,
    stateDir: join(dir, 'state'),
    host: options.host ?? '127.0.0.1',
    port: 0,
    path: '/dispatch',
    mdns: false,
    maxReportBytes: options.maxReportBytes ?? 64 * 1024,
    downloadTimeoutMs: options.downloadTimeoutMs ?? 60_000,
    filters: [],
    ...(options.runTimeoutMs === undefined ? {} : { runTimeoutMs: options.runTimeoutMs }),
  };
  const running = await startDispatch(config, { log: (subsystem, message) => logs.push(`${subsystem}: ${message}`) });
  opened.push(running);
  const port = new URL(running.url).port;
  const origin = `http://127.0.0.1:${port}`;
  const url = `${origin}/dispatch`;
  const names = new Map([...bytes].map(([name, content]) => [sha256(content), name]));

  const jobs = () => apiJobs(origin, REQUEST_TIMEOUT_MS);
  const job = (name: string) => apiJob(origin, name, REQUEST_TIMEOUT_MS);
  /** The queue's own view, for what the API does not show (the timeline). */
  const view = (name: string): JobView => {
    const found = running.queue.list().find((j) => j.name === name);
    if (!found) throw new Error(`no job ${name}`);
    return found;
  };

  /** One simulated server: index 0 is 127.0.0.2. HEAD and GET share a keep-alive connection, as EDK2's do. */
  const server = (index: number) => {
    const ip = loopbackAddress(index);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const request = (method: string, options: { path?: string; headers?: Record<string, string>; body?: string | Buffer; expectContinue?: boolean; breakAfter?: number } = {}): Promise<Sent> =>
      send({
        url: options.path === undefined ? url : `${origin}${options.path}`,
        method,
        localAddress: ip,
        agent,
        timeoutMs: REQUEST_TIMEOUT_MS,
        ...(options.headers === undefined ? {} : { headers: options.headers }),
        ...(options.body === undefined ? {} : { body: options.body }),
        ...(options.expectContinue === undefined ? {} : { expectContinue: options.expectContinue }),
        ...(options.breakAfter === undefined ? {} : { breakAfter: options.breakAfter }),
      });
    return {
      ip,
      request,
      head: () => request('HEAD', { headers: { ...FIRMWARE_HEADERS } }),
      get: (range?: string) => request('GET', { headers: range === undefined ? { ...FIRMWARE_HEADERS } : { ...FIRMWARE_HEADERS, Range: range } }),
      /** `beacon boot`. */
      post: () => request('POST'),
      /** `beacon report` with a JSON report (or any body). */
      put: (report: unknown, options: { expectContinue?: boolean } = {}) =>
        request('PUT', { body: typeof report === 'string' || Buffer.isBuffer(report) ? report : JSON.stringify(report), headers: { 'Content-Type': 'application/json' }, ...options }),
    };
  };

  /** Wait, bounded, for something the server does after answering (the end of a transfer, a filing). */
  const until = async (what: string, check: () => boolean | Promise<boolean>, limitMs = 5_000): Promise<number> => {
    const started = Date.now();
    while (!(await check())) {
      if (Date.now() - started > limitMs) throw new Error(`waited ${limitMs} ms for ${what}`);
      await delay(10);
    }
    return Date.now() - started;
  };

  return { dir, reports, running, url, origin, bytes, names, logs, jobs, job, view, server, until };
}

export type Lab = Awaited<ReturnType<typeof startLab>>;
export type LabServer = ReturnType<Lab['server']>;

/** A report file: its front matter lines and its body (everything after the closing `---` line). */
export function splitReport(text: string): { front: Record<string, string>; body: string } {
  if (!text.startsWith('---\n')) throw new Error(`no front matter in ${JSON.stringify(text.slice(0, 40))}`);
  const end = text.indexOf('\n---\n', 3);
  if (end === -1) throw new Error('front matter never closed');
  const front: Record<string, string> = {};
  for (const line of text.slice(4, end).split('\n')) {
    const match = /^([a-z]+): ?(.*)$/.exec(line);
    if (match) front[match[1]!] = match[2]!;
  }
  return { front, body: text.slice(end + '\n---\n'.length) };
}
