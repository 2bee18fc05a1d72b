/**
 * Just enough HTTP/1.1 for the bench's fleet client, on raw sockets: a
 * request written by hand, and an answer read for its status, the few headers
 * the client checks, and where it ends (body bytes are counted, not kept).
 * One parser per request, fed whatever the socket delivers; nothing is
 * pipelined. What it is fed is not kept past the call (the client reads every
 * socket into one shared buffer), so what it keeps it copies.
 *
 *   socket.write(request('GET', url, FIRMWARE_HEADERS));
 *   const parser = new AnswerParser('GET');
 *   socket.on('data', (chunk) => { const done = parser.feed(chunk); if (done) ... });
 */

/**
 * A request byte for byte as the simulator's Node http client (keep-alive
 * agent) writes it: the given headers, Content-Length of a given body, then
 * Host and Connection; a POST or PUT without a body (`beacon boot`) ends with
 * `Content-Length: 0`, as Node adds it last.
 */
export function request(method: string, url: URL, headers: Readonly<Record<string, string>>, body?: Buffer): Buffer {
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  if (body !== undefined) head += `Content-Length: ${body.byteLength}\r\n`;
  head += `Host: ${url.host}\r\nConnection: keep-alive\r\n`;
  if (body === undefined && (method === 'POST' || method === 'PUT')) head += 'Content-Length: 0\r\n';
  const bytes = Buffer.from(`${head}\r\n`, 'latin1');
  return body === undefined ? bytes : Buffer.concat([bytes, body]);
}

export interface Answer {
  readonly status: number;
  /** Content-Length as announced (a HEAD's describes the GET that would follow). */
  readonly contentLength: number | undefined;
  readonly contentType: string | undefined;
  /** Body bytes received (0 for a HEAD). */
  readonly bodyBytes: number;
  /** The server will close the connection after this answer. */
  readonly close: boolean;
}

/** The answer broke the protocol (no framing, a bad status line, a bad chunk). */
export class AnswerError extends Error {
  override readonly name = 'AnswerError';
}

/** Headers larger than this are not an answer dispatch would send. */
const MAX_HEAD = 64 * 1024;
const END_OF_HEAD = Buffer.from('\r\n\r\n');

type Body =
  | { readonly kind: 'length'; remaining: number }
  | { readonly kind: 'chunked'; state: 'size' | 'data' | 'data-end' | 'trailer'; remaining: number; line: Buffer }
  | { readonly kind: 'none' };

export class AnswerParser {
  #head: Buffer = Buffer.alloc(0);
  #answer: { status: number; contentLength: number | undefined; contentType: string | undefined; close: boolean } | undefined;
  #body: Body | undefined;
  #bodyBytes = 0;

  /** `method` matters: a HEAD's answer has no body whatever its Content-Length says. */
  constructor(readonly method: string) {}

  /** Bytes received so far: the answer once it is complete, with any bytes past its end; undefined while it is not. */
  feed(chunk: Buffer): { readonly answer: Answer; readonly rest: Buffer } | undefined {
    let data = chunk;
    if (this.#body === undefined) {
      const head = this.#head.byteLength === 0 ? data : Buffer.concat([this.#head, data]);
      const end = head.indexOf(END_OF_HEAD);
      if (end < 0) {
        if (head.byteLength > MAX_HEAD) throw new AnswerError(`no end of headers in ${head.byteLength} bytes`);
        this.#head = head === data ? Buffer.from(data) : head;
        return undefined;
      }
      this.#parseHead(head.subarray(0, end).toString('latin1'));
      data = head.subarray(end + END_OF_HEAD.byteLength);
      this.#head = Buffer.alloc(0);
    }
    const rest = this.#consume(data);
    return rest === undefined ? undefined : { answer: { ...this.#answer!, bodyBytes: this.#bodyBytes }, rest };
  }

  #parseHead(text: string): void {
    const [statusLine = '', ...lines] = text.split('\r\n');
    const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine);
    if (!match) throw new AnswerError(`bad status line ${JSON.stringify(statusLine.slice(0, 80))}`);
    const status = Number(match[1]);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const lengthText = headers.get('content-length');
    const contentLength = lengthText === undefined ? undefined : Number(lengthText);
    if (contentLength !== undefined && (!/^\d+$/.test(lengthText!) || !Number.isSafeInteger(contentLength))) throw new AnswerError(`bad Content-Length ${JSON.stringify(lengthText)}`);
    const chunked = /\bchunked\b/i.test(headers.get('transfer-encoding') ?? '');
    this.#answer = { status, contentLength, contentType: headers.get('content-type'), close: /\bclose\b/i.test(headers.get('connection') ?? '') };
    if (this.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) this.#body = { kind: 'none' };
    else if (chunked) this.#body = { kind: 'chunked', state: 'size', remaining: 0, line: Buffer.alloc(0) };
    else if (contentLength !== undefined) this.#body = { kind: 'length', remaining: contentLength };
    // A body that ends only when the connection closes cannot be told from a broken one: firmware would not cope either.
    else throw new AnswerError(`${status} answer to ${this.method} has neither Content-Length nor chunked encoding`);
  }

  /** Count body bytes; the bytes past the body's end once it is complete, else undefined. */
  #consume(data: Buffer): Buffer | undefined {
    const body = this.#body!;
    if (body.kind === 'none') return data;
    if (body.kind === 'length') {
      const take = Math.min(body.remaining, data.byteLength);
      body.remaining -= take;
      this.#bodyBytes += take;
      return body.remaining === 0 ? data.subarray(take) : undefined;
    }
    let at = 0;
    while (at < data.byteLength) {
      if (body.state === 'data') {
        const take = Math.min(body.remaining, data.byteLength - at);
        body.remaining -= take;
        this.#bodyBytes += take;
        at += take;
        if (body.remaining === 0) body.state = 'data-end';
        continue;
      }
      // Size lines, the CRLF after each chunk and the trailer are read a line at a time (a CRLF may be split between reads).
      const eol = data.indexOf(0x0a, at);
      const piece = data.subarray(at, eol < 0 ? data.byteLength : eol);
      const bytes = body.line.byteLength === 0 ? piece : Buffer.concat([body.line, piece]);
      if (bytes.byteLength > 4096) throw new AnswerError('chunk line over 4096 bytes');
      if (eol < 0) {
        body.line = bytes === piece ? Buffer.from(piece) : bytes;
        return undefined;
      }
      at = eol + 1;
      const line = bytes.toString('latin1').replace(/\r$/, '');
      body.line = Buffer.alloc(0);
      if (body.state === 'data-end') {
        if (line !== '') throw new AnswerError('chunk not followed by CRLF');
        body.state = 'size';
      } else if (body.state === 'size') {
        const size = /^([0-9a-fA-F]+)(?:;.*)?$/.exec(line);
        if (!size) throw new AnswerError(`bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
        body.remaining = parseInt(size[1]!, 16);
        body.state = body.remaining === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        return data.subarray(at);
      }
    }
    return undefined;
  }
}
