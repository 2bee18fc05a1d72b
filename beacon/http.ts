/** The one file that talks HTTP (undici). Every request is bounded in time. */
import { Agent, request } from 'undici';
import type { Answer } from './deliver.ts';

// dispatch answers in one short line; a server that sends more is not dispatch.
const MAX_BODY_BYTES = 64 * 1024;

export interface RequestSpec {
  readonly method: 'POST' | 'PUT';
  readonly url: string;
  readonly body?: string | undefined;
  readonly contentType?: string | undefined;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

export interface HttpClient {
  send(spec: RequestSpec): Promise<Answer>;
  close(): Promise<void>;
}

/** A short reason for a transport failure, for the one-line summary. */
function describe(err: unknown, timeoutMs: number): string {
  const error = err as { name?: string; code?: string | number; message?: string; cause?: { code?: string } };
  // AbortSignal.timeout() rejects with a DOMException named TimeoutError (numeric code 23).
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return `no answer in ${timeoutMs / 1000}s`;
  const code = typeof error.code === 'string' ? error.code : error.cause?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection closed by the server';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return 'network unreachable';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `no connection in ${timeoutMs / 1000}s`;
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ABORT_ERR':
    case 'UND_ERR_ABORTED':
      return `no answer in ${timeoutMs / 1000}s`;
    default:
      return code ? `${code}: ${error.message ?? ''}`.trim() : (error.message ?? String(err));
  }
}

export function httpClient(userAgent: string): HttpClient {
  // Own agent, closed at the end, so nothing keeps the process alive. undici's request()
  // never follows a redirect: dispatch sends none, and a report must not wander.
  const agent = new Agent({ keepAliveTimeout: 1_000, connections: 4 });
  return {
    async send(spec) {
      const signal = AbortSignal.any([spec.signal, AbortSignal.timeout(spec.timeoutMs)]);
      const headers: Record<string, string> = { 'user-agent': userAgent };
      if (spec.contentType !== undefined) headers['content-type'] = spec.contentType;
      try {
        const response = await request(spec.url, {
          method: spec.method,
          headers,
          body: spec.body ?? '',
          dispatcher: agent,
          signal,
          headersTimeout: spec.timeoutMs,
          bodyTimeout: spec.timeoutMs,
        });
        const chunks: Buffer[] = [];
        let received = 0;
        for await (const chunk of response.body) {
          const bytes = chunk as Buffer;
          chunks.push(bytes);
          received += bytes.byteLength;
          if (received >= MAX_BODY_BYTES) {
            response.body.destroy();
            break;
          }
        }
        return { status: response.statusCode, text: Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8') };
      } catch (err) {
        throw new Error(describe(err, spec.timeoutMs), { cause: err });
      }
    },
    async close() {
      await agent.destroy();
    },
  };
}
