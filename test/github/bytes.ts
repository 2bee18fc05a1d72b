import { createHmac, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Delivery, FakeAsset } from './state.ts';

/**
 * Serving an asset's bytes: byte ranges, slow and broken transfers, and the
 * signed short-lived URLs GitHub redirects to (release-assets.githubusercontent.com
 * is a blob store: its URL carries its own authorisation, expires, and refuses a
 * request that also brings an Authorization header).
 */

export const BLOB_PATH = '/github-production-release-asset';

export interface SignedParts {
  readonly repoId: number;
  readonly assetId: number;
  /** Expiry, epoch seconds. */
  readonly expires: number;
  readonly name: string;
}

function signature(secret: Buffer, p: SignedParts): string {
  return createHmac('sha256', secret).update(`${p.repoId}/${p.assetId}/${p.expires}/${p.name}`).digest('base64url');
}

/** `{origin}/github-production-release-asset/{repo}/{asset}?sp=r&se=…&rscd=…&sig=…[&hop=N]`. */
export function signedUrl(origin: string, secret: Buffer, p: SignedParts, hops: number): string {
  const url = new URL(`${origin}${BLOB_PATH}/${p.repoId}/${p.assetId}`);
  url.searchParams.set('sp', 'r');
  url.searchParams.set('se', new Date(p.expires * 1000).toISOString().replace('.000Z', 'Z'));
  url.searchParams.set('rscd', `attachment; filename=${p.name}`);
  url.searchParams.set('rsct', 'application/octet-stream');
  url.searchParams.set('sig', signature(secret, p));
  if (hops > 0) url.searchParams.set('hop', String(hops));
  return url.toString();
}

export type Verdict =
  | { readonly ok: true; readonly parts: SignedParts; readonly hops: number }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string; readonly detail?: string };

export function verifySigned(url: URL, secret: Buffer, nowSeconds: number): Verdict {
  const m = new RegExp(`^${BLOB_PATH}/(\\d+)/(\\d+)$`).exec(url.pathname);
  if (!m) return { ok: false, status: 404, code: 'ResourceNotFound', message: 'The specified resource does not exist.' };
  const se = url.searchParams.get('se');
  const sig = url.searchParams.get('sig');
  const rscd = url.searchParams.get('rscd') ?? '';
  const expiresMs = se === null ? Number.NaN : Date.parse(se);
  if (sig === null || Number.isNaN(expiresMs)) {
    return { ok: false, status: 403, code: 'AuthenticationFailed', message: 'Server failed to authenticate the request.', detail: 'sig and se are mandatory' };
  }
  const parts: SignedParts = { repoId: Number(m[1]), assetId: Number(m[2]), expires: Math.floor(expiresMs / 1000), name: rscd.replace(/^attachment; filename=/, '') };
  const want = Buffer.from(signature(secret, parts));
  const got = Buffer.from(sig);
  if (want.length !== got.length || !timingSafeEqual(want, got)) {
    return { ok: false, status: 403, code: 'AuthenticationFailed', message: 'Server failed to authenticate the request.', detail: 'Signature did not match.' };
  }
  if (nowSeconds > parts.expires) {
    return { ok: false, status: 403, code: 'AuthenticationFailed', message: 'Server failed to authenticate the request.', detail: `Signed expiry time [${new Date(parts.expires * 1000).toUTCString()}] has to be after the current time [${new Date(nowSeconds * 1000).toUTCString()}]` };
  }
  const hops = Number(url.searchParams.get('hop') ?? '0');
  return { ok: true, parts, hops: Number.isInteger(hops) && hops > 0 ? hops : 0 };
}

/** The blob store's error document (Azure Storage style). */
export function blobError(code: string, message: string, requestId: string, detail?: string): string {
  return (
    `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}\n` +
    `RequestId:${requestId}\nTime:${new Date().toISOString()}</Message>` +
    (detail ? `<AuthenticationErrorDetail>${detail}</AuthenticationErrorDetail>` : '') +
    '</Error>'
  );
}

export type Range = { readonly start: number; readonly end: number } | 'unsatisfiable' | null;

/** One `bytes=` range (a list of several is answered whole, as blob stores do). */
export function parseRange(header: string | undefined, size: number): Range {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return null;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

export interface Transfer {
  /** Bytes of the body written before the transfer ended. */
  sent: number;
  outcome: 'complete' | 'cut' | 'aborted';
}

/**
 * Write `asset` bytes `start..end` to `res`, honouring the delivery's pace and
 * cut; resolves when the transfer ends for any reason.
 */
export async function pump(res: ServerResponse, asset: FakeAsset, start: number, end: number, delivery: Delivery): Promise<Transfer> {
  const transfer: Transfer = { sent: 0, outcome: 'complete' };
  if (end < start) {
    res.end();
    return transfer;
  }
  const source: Iterable<Buffer> | AsyncIterable<Buffer> =
    asset.bytes !== null ? [asset.bytes.subarray(start, end + 1)] : createReadStream(asset.path ?? '', { start, end, highWaterMark: 64 * 1024 });
  const piece = delivery.bytesPerTick ?? Number.POSITIVE_INFINITY;
  try {
    for await (const chunk of source) {
      for (let offset = 0; offset < chunk.length; ) {
        if (res.destroyed) {
          transfer.outcome = 'aborted';
          return transfer;
        }
        let n = Math.min(piece, chunk.length - offset);
        if (delivery.cutAfter !== null && transfer.sent + n >= delivery.cutAfter) {
          n = Math.max(0, delivery.cutAfter - transfer.sent);
          if (n > 0) res.write(chunk.subarray(offset, offset + n));
          transfer.sent += n;
          transfer.outcome = 'cut';
          // Let the partial body leave before the connection goes, as a dying upstream's would.
          await new Promise<void>((resolve) => (res.writableNeedDrain ? res.once('drain', resolve) : setImmediate(resolve)));
          res.socket?.destroy();
          return transfer;
        }
        const ok = res.write(chunk.subarray(offset, offset + n));
        offset += n;
        transfer.sent += n;
        if (!ok) await drainedOrClosed(res);
        if (delivery.bytesPerTick !== null && transfer.sent < end - start + 1) await sleep(delivery.tickMs);
      }
    }
  } catch {
    transfer.outcome = 'aborted';
    res.destroy();
    return transfer;
  }
  if (res.destroyed) {
    transfer.outcome = 'aborted';
    return transfer;
  }
  res.end();
  return transfer;
}

/** Answer a GET for an asset's bytes: 200 whole, 206 a range, 416 a range past the end. */
export async function serveAsset(
  req: IncomingMessage,
  res: ServerResponse,
  asset: FakeAsset,
  delivery: Delivery,
  headers: Record<string, string>,
  onHead: (status: number) => void,
): Promise<Transfer & { status: number }> {
  const range = parseRange(req.headers.range, asset.size);
  const common: Record<string, string> = {
    ...headers,
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    'content-disposition': `attachment; filename=${asset.name}`,
    'last-modified': new Date(asset.updatedAt).toUTCString(),
    etag: `"0x${(asset.id * 7919 + asset.updatedAt).toString(16).toUpperCase()}"`,
  };
  if (range === 'unsatisfiable') {
    res.writeHead(416, { ...common, 'content-range': `bytes */${asset.size}`, 'content-length': '0' });
    onHead(416);
    res.end();
    return { status: 416, sent: 0, outcome: 'complete' };
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? asset.size - 1;
  const status = range ? 206 : 200;
  res.writeHead(status, {
    ...common,
    'content-length': String(end - start + 1),
    ...(range ? { 'content-range': `bytes ${start}-${end}/${asset.size}` } : {}),
  });
  onHead(status);
  if (req.method === 'HEAD') {
    res.end();
    return { status, sent: 0, outcome: 'complete' };
  }
  return { status, ...(await pump(res, asset, start, end, delivery)) };
}

/** Wait for room in the socket, or for its end; either way leave no listener behind (a big asset waits thousands of times). */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
