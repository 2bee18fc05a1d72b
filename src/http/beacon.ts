import type { Context } from 'hono';
import { parseReport } from '../report/index.ts';
import type { AppDeps, Env } from './deps.ts';
import { bodyText, requestHeader } from './incoming.ts';
import { peerAddress } from './peer.ts';
import { Rejection } from './rejection.ts';

/** The server a beacon request comes from; refused when the transport does not say. */
function serverOf(c: Context<Env>): string {
  const ip = peerAddress(c);
  if (ip === undefined) throw new Rejection(400, 'cannot tell which server this is');
  return ip;
}

/** POST: `beacon boot`. The server's downloaded job is now running. */
export function bootedRoute(deps: AppDeps) {
  return async (c: Context<Env>) => {
    const ip = serverOf(c);
    const job = deps.queue.boot(ip);
    // beacon reads 417 as "not this dispatch" and tries its next candidate.
    if (!job) throw new Rejection(417, `no workload is booting on ${ip}`);
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
  const tooLarge = () => new Rejection(413, `report too large: the limit is ${deps.maxReportBytes} bytes`);
  return async (c: Context<Env>) => {
    const ip = serverOf(c);
    if (deps.queue.reportTarget(ip) === undefined) throw new Rejection(417, `no job on ${ip} to report for`);
    // A client that asked to be told before sending its body (`Expect:
    // 100-continue`, curl above 1 MiB) hears "continue" only now: after the 417
    // check, and never for a body already announced as too large (413 below).
    const announced = Number(requestHeader(c, 'content-length'));
    if (Number.isFinite(announced) && announced > deps.maxReportBytes) throw tooLarge();
    if (requestHeader(c, 'expect')?.toLowerCase() === '100-continue') c.env?.outgoing?.writeContinue();
    const text = await bodyText(c, deps.maxReportBytes);
    if (text === undefined) throw tooLarge();
    const parsed = parseReport(text);
    if (!parsed.ok) throw new Rejection(400, parsed.reason);
    // Looked up again: the job may have moved on while the body was arriving.
    const id = deps.queue.reportTarget(ip);
    if (id === undefined) throw new Rejection(417, `no job on ${ip} to report for`);
    await deps.reports.submit(id, parsed.value);
    return c.text('report stored\n', 200);
  };
}
