import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { bind, createApp, type Bound, type HttpLimits } from '../../src/http/index.ts';
import { Queue, systemClock } from '../../src/jobs/index.ts';
import { directorySink, Reporter } from '../../src/report/index.ts';
import { builtinEfi, directorySource } from '../../src/source/index.ts';
import { apiJobs, type Cleanup } from '../fleet/lab.ts';

/**
 * dispatch's own parts wired as start.ts wires them (directory source and
 * sink), bound with limits a test chooses: what `startDispatch` does not let a
 * test shorten. Loopback, port 0, no mDNS; closed when the test ends.
 */
export async function startEdgeLab(t: Cleanup, options: { workloads: Readonly<Record<string, Buffer>>; limits?: Partial<HttpLimits>; maxReportBytes?: number; downloadTimeoutMs?: number }) {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-edge-'));
  const workloadDir = join(dir, 'workloads');
  const reports = join(dir, 'reports');
  await mkdir(workloadDir);
  await mkdir(reports);
  for (const [name, bytes] of Object.entries(options.workloads)) await writeFile(join(workloadDir, name), bytes);
  const logs: string[] = [];
  const log = (subsystem: string, message: string) => void logs.push(`${subsystem}: ${message}`);
  const workloads = await directorySource({ dir: workloadDir, filters: [], log: () => undefined }).load();
  const queue = new Queue(workloads, { clock: systemClock, downloadTimeoutMs: options.downloadTimeoutMs ?? 60_000 });
  const reporter = new Reporter({ queue, sink: directorySink(reports), clock: systemClock, log });
  const app = createApp({ queue, reports: reporter, path: '/dispatch', maxReportBytes: options.maxReportBytes ?? 64 * 1024, poweroff: await builtinEfi('poweroff.efi'), log });
  const bound: Bound = await bind(app, { host: '127.0.0.1', port: 0, log, ...(options.limits ? { limits: options.limits } : {}) });
  t.after(async () => {
    await bound.close(0);
    queue.stop();
    await reporter.stop(0);
    await rm(dir, { recursive: true, force: true });
  });
  const port = bound.address.port;
  const origin = `http://127.0.0.1:${port}`;
  /** Wait, bounded, for something that happens after an answer. */
  const until = async (what: string, check: () => boolean | Promise<boolean>, limitMs = 5_000): Promise<number> => {
    const started = Date.now();
    while (!(await check())) {
      if (Date.now() - started > limitMs) throw new Error(`waited ${limitMs} ms for ${what}\n${logs.join('\n')}`);
      await delay(10);
    }
    return Date.now() - started;
  };
  return { dir, reports, port, origin, url: `${origin}/dispatch`, bound, queue, reporter, logs, until, jobs: () => apiJobs(origin, 5_000) };
}
