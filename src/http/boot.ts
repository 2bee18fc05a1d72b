import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import type { Claim } from '../jobs/index.ts';
import type { Workload } from '../source/index.ts';
import { countedBody, sendFile, streamTo } from './body.ts';
import type { AppDeps, Env } from './deps.ts';
import { requestHeader } from './incoming.ts';
import { peerAddress } from './peer.ts';
import { Rejection } from './rejection.ts';
import { parseRange, resolveRange, startsAtZero } from './range.ts';

/**
 * HEAD and GET of the protocol path: what the firmware boots. HEAD only ever
 * assigns; GET streams and moves the job to Downloading. Both answer with the
 * same length and bare content type for the same server, because EDK2 sizes
 * its buffer from the HEAD and rejects any parameter on the type.
 */
export function bootRoute(deps: AppDeps) {
  return (c: Context<Env>) => {
    const ip = peerAddress(c);
    if (ip === undefined) return c.text('cannot tell which server this is\n', 400);
    const method = c.req.method === 'HEAD' ? 'HEAD' : 'GET';
    // A firmware never sends a body with HEAD or GET. One that says it does is
    // malformed, and refused before any job moves: the download would start
    // while Node is still reading (or refusing) that body, and the answer be lost.
    if (requestHeader(c, 'transfer-encoding') !== undefined || Number(requestHeader(c, 'content-length') ?? 0) !== 0) {
      throw new Rejection(400, `a ${method} of the boot path carries no body`);
    }
    const rangeHeader = method === 'GET' ? requestHeader(c, 'range') : undefined;
    const spec = parseRange(rangeHeader);
    // A range from byte 0 is a fresh download, not a resume: it may take a new job.
    const resuming = spec !== undefined && !startsAtZero(spec);
    const claim: Claim = resuming ? deps.queue.claimRange(ip) : deps.queue.claim(ip, method);
    if (claim.kind === 'none') {
      deps.log('http', `${ip} asked to resume a download it does not hold (${rangeHeader})`);
      // DESIGN §4: every HEAD/GET answer says ranges are accepted, this refusal too.
      return c.text('nothing to resume: this server holds no download\n', 416, { 'Accept-Ranges': 'bytes' });
    }
    const workload = claim.kind === 'job' ? claim.workload : deps.poweroff;
    const headers: Record<string, string> = {
      'Content-Type': workload.contentType,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'no-store',
    };
    if (method === 'HEAD') {
      return c.body(null, 200, { ...headers, 'Content-Length': String(workload.size) });
    }
    if (spec === undefined) {
      return send(c, deps, workload, claim, ip, headers, { start: 0, end: workload.size - 1 }, 200);
    }
    const range = resolveRange(spec, workload.size);
    if (range === undefined) {
      return c.body('range not satisfiable\n', 416, { ...headers, 'Content-Range': `bytes */${workload.size}` });
    }
    return send(c, deps, workload, claim, ip, { ...headers, 'Content-Range': `bytes ${range.start}-${range.end}/${workload.size}` }, range, 206);
  };
}

function send(
  c: Context<Env>,
  deps: AppDeps,
  workload: Workload,
  claim: Claim,
  ip: string,
  headers: Record<string, string>,
  range: { start: number; end: number },
  status: 200 | 206,
) {
  const transfer =
    claim.kind === 'job'
      ? deps.queue.beginTransfer(claim.id, ip, {
          reachesEnd: range.end === workload.size - 1,
          ...(status === 206 ? { range: `bytes ${range.start}-${range.end}` } : {}),
        })
      : undefined;
  const length = String(range.end - range.start + 1);
  const outgoing = c.env?.outgoing;
  if (outgoing) {
    // On a real socket, bypass the web stream Hono would pump chunk by chunk:
    // the bytes go from the file to the socket with no hop in between.
    outgoing.writeHead(status, { ...headers, 'Content-Length': length });
    const file = workload.file?.();
    const failed = (reason: string) => deps.log('http', `${ip}: ${workload.name} could not be read, its transfer is cut: ${reason}`);
    if (file !== undefined) sendFile(outgoing, file, range, transfer, { instead: () => workload.read(range), failed });
    else streamTo(outgoing, workload.read(range), transfer, failed);
    return RESPONSE_ALREADY_SENT;
  }
  return c.body(countedBody(workload.read(range), transfer), status, { ...headers, 'Content-Length': length });
}
