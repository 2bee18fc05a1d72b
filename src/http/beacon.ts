import type { Context, Next } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { parseReport } from '../report/index.ts';
import type { AppDeps, Env } from './deps.ts';
import { peerAddress } from './peer.ts';

/** POST: `beacon boot`. The server's downloaded job is now running. */
export function bootedRoute(deps: AppDeps) {
  return async (c: Context<Env>) => {
    const ip = peerAddress(c);
    if (ip === undefined) return c.text('cannot tell which server this is\n', 400);
    const job = deps.queue.boot(ip);
    if (!job) {
      deps.log('http', `${ip} POST refused (417): no downloaded job`);
      return c.text(`no workload is booting on ${ip}\n`, 417);
    }
    // The 200 promises the job is Booting: a restart must find it so (a failed save is a 500, and beacon tries again).
    await deps.persisted?.();
    return c.text(`booting ${job.name}\n`, 200);
  };
}

/**
 * PUT: `beacon report`. Checked in the order that costs least: is there a job
 * (417), is the body too big (413, while reading, before it is all in), is it
 * a report (400); then stored durably before the 200.
 */
export function reportRoute(deps: AppDeps) {
  const target = async (c: Context<Env>, next: Next) => {
    const ip = peerAddress(c);
    if (ip === undefined) return c.text('cannot tell which server this is\n', 400);
    if (deps.queue.reportTarget(ip) === undefined) {
      deps.log('http', `${ip} PUT refused (417): no job to report for`);
      return c.text(`no job on ${ip} to report for\n`, 417);
    }
    await next();
    return undefined;
  };
  // A client that asked to be told before sending its body (`Expect:
  // 100-continue`, curl above 1 MiB) hears "continue" only now: after the 417
  // check, and never for a body already announced as too large (413 below).
  const proceed = async (c: Context<Env>, next: Next) => {
    const announced = Number(c.req.header('content-length'));
    const tooLarge = Number.isFinite(announced) && announced > deps.maxReportBytes;
    if (c.req.header('expect')?.toLowerCase() === '100-continue' && !tooLarge) c.env?.outgoing?.writeContinue();
    await next();
    return undefined;
  };
  const limit = bodyLimit({
    maxSize: deps.maxReportBytes,
    onError: (c) => {
      deps.log('http', `${peerAddress(c) ?? 'unknown'} PUT refused (413): report over ${deps.maxReportBytes} bytes`);
      return c.text(`report too large: the limit is ${deps.maxReportBytes} bytes\n`, 413);
    },
  });
  const store = async (c: Context<Env>) => {
    const ip = peerAddress(c)!;
    const parsed = parseReport(await c.req.text());
    if (!parsed.ok) {
      deps.log('http', `${ip} sent a bad report: ${parsed.reason}`);
      return c.text(`${parsed.reason}\n`, 400);
    }
    // Looked up again: the job may have moved on while the body was arriving.
    const id = deps.queue.reportTarget(ip);
    if (id === undefined) return c.text(`no job on ${ip} to report for\n`, 417);
    await deps.reports.submit(id, parsed.value);
    return c.text('report stored\n', 200);
  };
  return [target, proceed, limit, store] as const;
}
