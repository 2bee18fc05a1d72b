import { strict as assert } from 'node:assert';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { AnswerError, AnswerParser, request, type Answer } from './bench/wire.ts';
import { FIRMWARE_HEADERS, send } from './fleet/http.ts';

/** Feed `text` to a parser one byte at a time (the worst split a socket can deliver); the answer and what was left over. */
function byteByByte(method: string, text: string): { answer: Answer; rest: string } | undefined {
  const parser = new AnswerParser(method);
  const bytes = Buffer.from(text, 'latin1');
  for (let i = 0; i < bytes.byteLength; i += 1) {
    const done = parser.feed(bytes.subarray(i, i + 1));
    if (done) return { answer: done.answer, rest: Buffer.concat([done.rest, bytes.subarray(i + 1)]).toString('latin1') };
  }
  return undefined;
}

describe("the bench client's requests are the simulator's, byte for byte", () => {
  // A server that answers every request with an empty 200 and keeps what it was sent.
  const received: Buffer[] = [];
  const server = net.createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
  });
  let url: URL;
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = new URL(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}/dispatch`);
  });
  // Each request's agent is destroyed after it, so no connection is left to hold the server open.
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** What the simulator's send() puts on the wire for one request. */
  async function simulated(method: string, headers: Readonly<Record<string, string>>, body?: string): Promise<string> {
    received.length = 0;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await send({ url: url.href, method, headers, agent, timeoutMs: 5_000, ...(body === undefined ? {} : { body }) });
    } finally {
      agent.destroy();
    }
    return Buffer.concat(received).toString('latin1');
  }

  test("the firmware's HEAD and GET", async () => {
    for (const method of ['HEAD', 'GET']) assert.equal(request(method, url, FIRMWARE_HEADERS).toString('latin1'), await simulated(method, FIRMWARE_HEADERS));
  });

  test('beacon boot: a POST without a body', async () => {
    const headers = { 'User-Agent': 'beacon-sim' };
    assert.equal(request('POST', url, headers).toString('latin1'), await simulated('POST', headers));
  });

  test('beacon report: a PUT of JSON', async () => {
    const headers = { 'User-Agent': 'beacon-sim', 'Content-Type': 'application/json' };
    const report = JSON.stringify({ title: 'boot 0 on 127.0.0.2', labels: ['fleet'] });
    assert.equal(request('PUT', url, headers, Buffer.from(report)).toString('latin1'), await simulated('PUT', headers, report));
  });
});

describe('reading an answer', () => {
  test('a download is complete after exactly Content-Length body bytes, however it is split', () => {
    const done = byteByByte('GET', 'HTTP/1.1 200 OK\r\nContent-Type: application/efi\r\ncontent-length: 5\r\n\r\nhello');
    assert.deepEqual(done, { answer: { status: 200, contentLength: 5, contentType: 'application/efi', bodyBytes: 5, close: false }, rest: '' });
  });

  test('a download cut short is not complete', () => {
    assert.equal(byteByByte('GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhell'), undefined);
  });

  test("a HEAD's answer ends with its headers, whatever Content-Length announces", () => {
    const done = byteByByte('HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\nHTTP/1.1 200 OK');
    assert.equal(done?.answer.contentLength, 65536);
    assert.equal(done?.answer.bodyBytes, 0);
    assert.equal(done?.rest, 'HTTP/1.1 200 OK');
  });

  test('a chunked body is counted to its last chunk, trailer included', () => {
    const done = byteByByte('PUT', 'HTTP/1.1 417 Expectation Failed\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\na;x=y\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nnext');
    assert.equal(done?.answer.status, 417);
    assert.equal(done?.answer.bodyBytes, 13);
    assert.equal(done?.rest, 'next');
  });

  test('bytes past the end of an answer are handed back, not counted', () => {
    const done = new AnswerParser('POST').feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nokEXTRA'));
    assert.equal(done?.answer.bodyBytes, 2);
    assert.equal(done?.answer.close, true);
    assert.equal(done?.rest.toString(), 'EXTRA');
  });

  test('what the parser keeps between reads survives the read buffer being reused', () => {
    const parser = new AnswerParser('GET');
    const shared = Buffer.from('HTTP/1.1 200 OK\r\nContent-');
    assert.equal(parser.feed(shared), undefined);
    shared.fill('x');
    const done = parser.feed(Buffer.from('Length: 2\r\n\r\nok'));
    assert.equal(done?.answer.status, 200);
    assert.equal(done?.answer.bodyBytes, 2);
  });

  test('an answer without framing, or with a bad status line, is an error', () => {
    assert.throws(() => new AnswerParser('GET').feed(Buffer.from('HTTP/1.1 200 OK\r\n\r\nbody until close')), AnswerError);
    assert.throws(() => new AnswerParser('GET').feed(Buffer.from('HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')), AnswerError);
    assert.throws(() => new AnswerParser('GET').feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n')), AnswerError);
  });
});
