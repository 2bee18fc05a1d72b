import http from 'node:http';

/** What EDK2's HTTP boot driver sends on every request, besides Host (and Range when it resumes). */
export const FIRMWARE_HEADERS: Readonly<Record<string, string>> = { Accept: '*/*', 'User-Agent': 'UefiHttpBoot/1.0' };

/** The three content types UEFI HTTP boot accepts (EDK2 HttpBootCheckImageType). */
export const BOOT_TYPES: readonly string[] = ['application/efi', 'application/vnd.efi-iso', 'application/vnd.efi-img'];

export interface SendOptions {
  readonly url: string;
  readonly method: string;
  /** Source address of the connection: which server this is. */
  readonly localAddress?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent with a Content-Length. */
  readonly body?: Buffer | string;
  /** Announce the body with `Expect: 100-continue` and send it only if the server says continue. */
  readonly expectContinue?: boolean;
  /** Connections to reuse (keep-alive); a fresh connection without one. */
  readonly agent?: http.Agent;
  /** Inactivity limit on the socket; the request fails after it. */
  readonly timeoutMs: number;
  /** Read this many body bytes, then drop the connection, as a broken transfer does (ignored when the body is no longer). */
  readonly breakAfter?: number;
  /** Read the body no faster than this, as a slow link would. */
  readonly bytesPerSecond?: number;
  readonly signal?: AbortSignal;
}

export interface Sent {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  /** Local port of the connection the answer came on (same port = same connection). */
  readonly localPort: number | undefined;
  /** The connection was dropped by us after `breakAfter` bytes. */
  readonly broken: boolean;
  /** The body went out (false when the server answered an `Expect: 100-continue` before asking for it). */
  readonly bodySent: boolean;
}

/** One HTTP request from a given source address, bounded in time; rejects on transport errors. */
export function send(options: SendOptions): Promise<Sent> {
  const url = new URL(options.url);
  const body = typeof options.body === 'string' ? Buffer.from(options.body) : options.body;
  const headers: Record<string, string> = { ...options.headers };
  if (body !== undefined) headers['Content-Length'] = String(body.byteLength);
  if (options.expectContinue) headers.Expect = '100-continue';
  return new Promise<Sent>((resolve, reject) => {
    let settled = false;
    let bodySent = false;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      outcome();
    };
    const req = http.request({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port,
      path: url.pathname + url.search,
      method: options.method,
      headers,
      agent: options.agent ?? false,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    req.setTimeout(options.timeoutMs, () => req.destroy(new Error(`${options.method} ${url.pathname}: nothing for ${options.timeoutMs} ms`)));
    req.on('error', (err) => finish(() => reject(err)));
    req.on('response', (res) => {
      const localPort = req.socket?.localPort;
      const chunks: Buffer[] = [];
      let received = 0;
      const readStart = performance.now();
      // Breaking at or past the end would be no break at all.
      const breakAt = options.breakAfter !== undefined && options.breakAfter < Number(res.headers['content-length'] ?? Infinity) ? options.breakAfter : undefined;
      const answer = (broken: boolean): Sent => ({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), localPort, broken, bodySent });
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        if (breakAt !== undefined && received + chunk.byteLength >= breakAt) {
          chunks.push(chunk.subarray(0, breakAt - received));
          received = breakAt;
          finish(() => resolve(answer(true)));
          req.destroy();
          return;
        }
        chunks.push(chunk);
        received += chunk.byteLength;
        if (options.bytesPerSecond !== undefined) {
          // Ahead of the link's pace: stop reading until it catches up (TCP backs the sender off).
          const ahead = (received / options.bytesPerSecond) * 1000 - (performance.now() - readStart);
          if (ahead > 0) {
            res.pause();
            setTimeout(() => res.resume(), ahead);
          }
        }
      });
      res.on('end', () => {
        finish(() => resolve(answer(false)));
        // The body was never sent: the connection is in no state to be reused.
        if (options.expectContinue && !bodySent) req.destroy();
      });
      res.on('error', (err) => finish(() => reject(err)));
    });
    if (body !== undefined && options.expectContinue) {
      req.on('continue', () => {
        bodySent = true;
        req.end(body);
      });
      req.flushHeaders();
    } else {
      bodySent = body !== undefined;
      req.end(body);
    }
  });
}
