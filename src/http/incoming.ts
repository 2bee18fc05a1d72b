import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import type { Env } from './deps.ts';

/**
 * What a route reads of the request, from Node's own parse when there is
 * one. Asking Hono's request for a header or its body makes
 * @hono/node-server build a whole web Request first (undici Headers, and a
 * web stream over the Node stream for the body), for every request. Under
 * `app.request()` (tests) there is no Node request: Hono's is read instead.
 */

/** Node's request, when the app is served by Node (tests may pass a bare socket address instead). */
function nodeRequest(c: Context<Env>): IncomingMessage | undefined {
  const incoming = c.env?.incoming;
  return incoming?.headers === undefined ? undefined : incoming;
}

/** A request header (names in lower case). */
export function requestHeader(c: Context<Env>, name: string): string | undefined {
  const headers = nodeRequest(c)?.headers;
  if (headers) {
    const value = headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  return c.req.header(name);
}

/** Decoded as Hono's `text()` decodes (a leading byte-order mark is dropped, bad sequences replaced). */
const utf8 = new TextDecoder();

/** Body chunks up to a limit. */
class Limited {
  readonly #chunks: Uint8Array[] = [];
  #size = 0;

  constructor(readonly maxBytes: number) {}

  /** False once the body is past the limit (the chunk is not kept). */
  add(chunk: Uint8Array): boolean {
    this.#size += chunk.byteLength;
    if (this.#size > this.maxBytes) return false;
    this.#chunks.push(chunk);
    return true;
  }

  text(): string {
    return utf8.decode(this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size));
  }
}

/**
 * The request body as text; undefined as soon as it is past `maxBytes`,
 * counted while it arrives (a chunked body says no length up front), so the
 * refusal goes out before the rest is sent. What is past the limit is never
 * read. Rejects when the body stops before its end.
 */
export function bodyText(c: Context<Env>, maxBytes: number): Promise<string | undefined> {
  const incoming = nodeRequest(c);
  return incoming ? fromNode(incoming, new Limited(maxBytes)) : fromWeb(c.req.raw.body, new Limited(maxBytes));
}

function fromNode(incoming: IncomingMessage, body: Limited): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const settle = (text: string | undefined, err?: Error) => {
      incoming.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (chunk: Buffer) => {
      if (body.add(chunk)) return;
      // The rest is not read here: once the 413 is sent, @hono/node-server
      // drains what still comes for a moment, then closes the connection.
      incoming.pause();
      settle(undefined);
    };
    const onEnd = () => settle(body.text());
    const onError = (err: Error) => settle(undefined, err);
    // 'end' comes before 'close' for a body that was all there.
    const onClose = () => settle(undefined, new Error('the request body ended before it was complete'));
    if (incoming.destroyed) return onClose();
    incoming.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

async function fromWeb(stream: ReadableStream<Uint8Array> | null, body: Limited): Promise<string | undefined> {
  if (stream === null) return '';
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return body.text();
    if (!body.add(value)) {
      await reader.cancel();
      return undefined;
    }
  }
}
