import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { DEFAULT_LIMITS } from '../src/http/index.ts';
import { handedBytes } from '../src/http/body.ts';
import { limitedRejectionLog } from '../src/http/rejection.ts';
import { parseReport } from '../src/report/index.ts';
import { FIRMWARE_HEADERS, send } from './fleet/http.ts';
import { startEdgeLab } from './support/edge-lab.ts';
import { bytewise, raw } from './support/raw.ts';

// Issue #7: what a slow, broken or hostile client gets from the HTTP edge, over
// real sockets on loopback with the limits shortened. Every refusal is a 4xx
// with a one-line reason, and the listener is never pinned or crashed.

const SHORT = { headersTimeoutMs: 300, requestTimeoutMs: 800, keepAliveTimeoutMs: 200, idleTimeoutMs: 500, maxConnectionsPerPeer: 4 };
const HEAD = 'HEAD /dispatch HTTP/1.1\r\nHost: dispatch\r\n\r\n';

/** The part of a raw answer after its headers. */
const bodyOf = (data: Buffer) => data.toString('latin1').split('\r\n\r\n').slice(1).join('\r\n\r\n');
const headerOf = (data: Buffer, name: string) => new RegExp(`^${name}: (.*)$`, 'im').exec(data.toString('latin1').split('\r\n\r\n')[0]!)?.[1]?.trim();

/** HEAD, GET and `beacon boot` from one address: it now runs its workload and may PUT a report. */
async function boot(origin: string, ip: string) {
  const agent = new http.Agent({ keepAlive: false });
  try {
    for (const method of ['HEAD', 'GET', 'POST']) {
      const answer = await send({ url: `${origin}/dispatch`, method, localAddress: ip, agent, timeoutMs: 5_000, headers: method === 'POST' ? {} : FIRMWARE_HEADERS });
      assert.equal(answer.status, 200, `${method} from ${ip}`);
    }
  } finally {
    agent.destroy();
  }
}

/** Reads a connection at about 8 MiB/s (256 KiB every 30 ms) until it closes, for at most 15 s. */
function slowReader(socket: net.Socket) {
  socket.pause();
  const state = { received: 0, done: Promise.resolve() };
  let closed = false;
  socket.once('close', () => (closed = true));
  socket.on('error', () => undefined);
  state.done = (async () => {
    const started = Date.now();
    while (!closed && Date.now() - started < 15_000) {
      const chunk = (socket.read(256 * 1024) ?? socket.read()) as Buffer | null;
      if (chunk) state.received += chunk.byteLength;
      await delay(30);
    }
  })();
  return state;
}

describe('slow clients cannot pin a connection', () => {
  test('the defaults a lab gets', () => {
    assert.deepEqual(DEFAULT_LIMITS, { headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000, idleTimeoutMs: 60_000, maxConnectionsPerPeer: 16 });
  });

  test('headers trickled byte by byte are answered 408 and the connection closed once the headers timeout passes', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(4096) }, limits: SHORT });
    // 38 bytes 100 ms apart: 3.8 s to send, against a 300 ms limit.
    const slow = await raw({ port: lab.port, localAddress: '127.0.0.2', chunks: bytewise(HEAD), gapMs: 100, limitMs: 5_000 });
    assert.equal(slow.status, 408);
    assert.equal(slow.end, 'closed');
    assert.ok(slow.ms >= 250 && slow.ms < 2_500, `closed after ${slow.ms} ms`);
    assert.ok(slow.unsent > 0, 'cut before the headers were all sent');
    assert.match(bodyOf(slow.data), /^request too slow: headers must arrive within 300 ms/);
    assert.ok(lab.logs.some((l) => l.startsWith('http: 127.0.0.2 refused (408): request too slow')), lab.logs.join('\n'));
    assert.deepEqual((await lab.jobs()).map((j) => j.state), ['unassigned'], 'the slow request touched no job');
  });

  test('a connection that sends nothing is answered 408 and closed after the headers timeout', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(4096) }, limits: SHORT });
    const silent = await raw({ port: lab.port, localAddress: '127.0.0.2', chunks: [], end: false, limitMs: 5_000 });
    assert.deepEqual([silent.status, silent.end], [408, 'closed']);
    assert.ok(silent.ms >= 250 && silent.ms < 2_500, `closed after ${silent.ms} ms`);
  });

  test('a report body trickled byte by byte is answered 408 once the request timeout passes, and nothing is stored', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(4096) }, limits: SHORT });
    await boot(lab.origin, '127.0.0.2');
    // 56 bytes 150 ms apart: over 8 s to send, against an 800 ms limit.
    const report = JSON.stringify({ title: 'slow', body: 'a body that takes eight seconds' });
    const slow = await raw({
      port: lab.port,
      localAddress: '127.0.0.2',
      chunks: [`PUT /dispatch HTTP/1.1\r\nHost: dispatch\r\nContent-Type: application/json\r\nContent-Length: ${report.length}\r\n\r\n`, ...bytewise(report)],
      gapMs: 150,
      limitMs: 5_000,
    });
    assert.equal(slow.status, 408);
    assert.ok(slow.ms >= 700 && slow.ms < 4_000, `closed after ${slow.ms} ms`);
    assert.ok(slow.unsent > 0);
    assert.equal((await lab.jobs())[0]!.state, 'booting', 'no report reached the job');
  });

  test('a report body that stops short of its Content-Length and closes is a 400, and nothing is stored', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(4096) }, limits: SHORT });
    await boot(lab.origin, '127.0.0.2');
    const cut = await raw({ port: lab.port, localAddress: '127.0.0.2', chunks: ['PUT /dispatch HTTP/1.1\r\nHost: dispatch\r\nContent-Length: 100\r\n\r\n{"title":'], limitMs: 5_000 });
    assert.equal(cut.status, 400);
    assert.equal(bodyOf(cut.data), 'the connection closed before the request was complete\n');
    assert.equal((await lab.jobs())[0]!.state, 'booting');
  });

  test('a slow reader that keeps reading gets its whole download, though it outlasts every timeout', async (t) => {
    const size = 24 * 1024 * 1024;
    const lab = await startEdgeLab(t, { workloads: { 'big.efi': randomBytes(size) }, limits: SHORT });
    // About 8 MiB/s: three seconds, far past the request and idle timeouts,
    // and more than loopback's socket buffers hold, so the server waits on us.
    const socket = net.connect({ port: lab.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    socket.write('GET /dispatch HTTP/1.1\r\nHost: dispatch\r\n\r\n');
    const started = Date.now();
    const reader = slowReader(socket);
    await lab.until('the whole download', () => reader.received >= size, 15_000);
    socket.destroy();
    const received = reader.received;
    const ms = Date.now() - started;
    assert.ok(received >= size, `received ${received} of ${size} bytes in ${ms} ms`);
    assert.ok(ms > SHORT.requestTimeoutMs + SHORT.idleTimeoutMs, `the download took ${ms} ms`);
    await lab.until('the transfer recorded as complete', async () => (await lab.jobs())[0]!.state === 'downloading');
    assert.ok(!lab.logs.some((l) => l.includes('nothing moved')), lab.logs.join('\n'));
  });

  test('a reader that stops reading is cut after the idle timeout, and its job can be resumed', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'big.efi': randomBytes(24 * 1024 * 1024) }, limits: SHORT });
    const socket = net.connect({ port: lab.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    t.after(() => socket.destroy());
    socket.write('GET /dispatch HTTP/1.1\r\nHost: dispatch\r\n\r\n');
    socket.pause();
    const waited = await lab.until('the stalled download cut', () => lab.logs.some((l) => l.includes('127.0.0.2 cut: nothing moved on its connection for 500 ms')), 5_000);
    assert.ok(waited >= 400, `cut after ${waited} ms`);
    const job = (await lab.jobs())[0]!;
    assert.equal(job.ip, '127.0.0.2', 'the server still holds its job and may resume it');
  });
});

describe('downloads side by side (written to their sockets from libuv\'s threads)', () => {
  test('a slow reader still gets every byte and is never cut, while one that stops reading beside it is cut after the idle timeout', async (t) => {
    const size = 24 * 1024 * 1024;
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(size), 'b.efi': randomBytes(size) }, limits: SHORT });
    const before = handedBytes();
    const slow = net.connect({ port: lab.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    t.after(() => slow.destroy());
    slow.write('GET /dispatch HTTP/1.1\r\nHost: dispatch\r\n\r\n');
    const reader = slowReader(slow);
    const stopped = net.connect({ port: lab.port, host: '127.0.0.1', localAddress: '127.0.0.3' });
    t.after(() => stopped.destroy());
    stopped.on('error', () => undefined);
    stopped.write('GET /dispatch HTTP/1.1\r\nHost: dispatch\r\n\r\n');
    stopped.pause();
    const waited = await lab.until('the stalled download cut', () => lab.logs.some((l) => l.includes('127.0.0.3 cut: nothing moved on its connection for 500 ms')), 5_000);
    assert.ok(waited >= 400, `cut after ${waited} ms`);
    await lab.until('the whole slow download', () => reader.received >= size, 15_000);
    assert.ok(handedBytes().direct > before.direct, 'bytes went to the sockets from libuv\'s threads');
    await lab.until('the slow transfer recorded as complete', async () => (await lab.jobs()).find((job) => job.ip === '127.0.0.2')?.state === 'downloading');
    assert.ok(!lab.logs.some((l) => l.includes('127.0.0.2 cut')), lab.logs.join('\n'));
  });
});

describe('one peer cannot take every connection', () => {
  test('a peer over its connection cap is answered 429 with Retry-After and closed; other peers are not affected; a closed connection frees its place', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(4096), 'b.efi': randomBytes(4096) }, limits: { ...SHORT, headersTimeoutMs: 5_000, requestTimeoutMs: 5_000 } });
    const held: net.Socket[] = [];
    t.after(() => held.forEach((s) => s.destroy()));
    for (let i = 0; i < SHORT.maxConnectionsPerPeer; i += 1) {
      const socket = net.connect({ port: lab.port, host: '127.0.0.1', localAddress: '127.0.0.9' });
      await new Promise((resolve) => socket.once('connect', resolve));
      held.push(socket);
    }
    const over = await raw({ port: lab.port, localAddress: '127.0.0.9', chunks: [HEAD], limitMs: 3_000 });
    assert.equal(over.status, 429);
    assert.equal(over.end, 'closed');
    assert.equal(headerOf(over.data, 'Retry-After'), '1');
    assert.equal(headerOf(over.data, 'Connection'), 'close');
    assert.equal(bodyOf(over.data), 'too many connections from 127.0.0.9: the limit is 4\n');
    assert.ok(lab.logs.some((l) => l === 'http: 127.0.0.9 refused (429): already holds 4 connections (limit 4)'), lab.logs.join('\n'));
    assert.deepEqual((await lab.jobs()).map((j) => j.state), ['unassigned', 'unassigned'], 'the refused HEAD assigned nothing');

    const other = await raw({ port: lab.port, localAddress: '127.0.0.10', chunks: [HEAD], limitMs: 3_000 });
    assert.equal(other.status, 200, 'another peer is served');

    held.pop()!.destroy();
    await lab.until('the freed place', async () => (await raw({ port: lab.port, localAddress: '127.0.0.9', chunks: [HEAD], limitMs: 3_000 })).status === 200, 3_000);
    assert.deepEqual((await lab.jobs()).map((j) => j.ip), ['127.0.0.10', '127.0.0.9']);
  });
});

describe('paths are compared as spelled', () => {
  test('only the configured path, with or without a query, is the boot path; every other spelling is 404 and touches no job', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(4096), 'b.efi': randomBytes(4096), 'c.efi': randomBytes(4096) }, limits: SHORT });
    const status = async (target: string, ip: string) =>
      (await raw({ port: lab.port, localAddress: ip, chunks: [`HEAD ${target} HTTP/1.1\r\nHost: dispatch\r\n\r\n`], limitMs: 3_000 })).status;
    const refused = ['/dispatch/', '//dispatch', '/%64ispatch', '/dispatch/../dispatch', '/./dispatch', '/x/../dispatch', '/DISPATCH', '/dispatch%2F', '/dispatch;x'];
    for (const target of refused) assert.equal(await status(target, '127.0.0.2'), 404, target);
    assert.deepEqual((await lab.jobs()).map((j) => j.state), ['unassigned', 'unassigned', 'unassigned']);
    assert.equal(await status('/dispatch', '127.0.0.3'), 200);
    assert.equal(await status('/dispatch?x=1', '127.0.0.4'), 200, 'the query is ignored');
    assert.equal(await status('http://dispatch/dispatch', '127.0.0.5'), 200, 'absolute-form, as a proxy is sent');
    assert.deepEqual((await lab.jobs()).map((j) => j.ip), ['127.0.0.3', '127.0.0.4', '127.0.0.5']);
  });
});

describe('malformed requests', () => {
  test('each is a 4xx with a one-line reason, and one peer gets one log line per window', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(4096) }, limits: SHORT });
    const cases: Array<[string, number, RegExp]> = [
      ['\x00\x01GARBAGE\r\n\r\n', 400, /^malformed request: invalid method encountered\n$/],
      ['PUT /dispatch HTTP/1.1\r\nHost: d\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400, /^malformed request: duplicate content-length\n$/],
      ['PUT /dispatch HTTP/1.1\r\nHost: d\r\nContent-Length: -1\r\n\r\n', 400, /^malformed request: invalid character in content-length\n$/],
      ['PUT /dispatch HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n', 400, /^malformed request: content-length can't be present with transfer-encoding\n$/],
      [`GET /dispatch HTTP/1.1\r\nHost: d\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, /^request headers too large\n$/],
      ['CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n', 405, /^method not allowed\n$/],
      ['GET /dispatch HTTP/1.1\r\nHost: d\r\nExpect: tea\r\n\r\n', 417, /^only Expect: 100-continue is understood\n$/],
      ['GET /dispatch HTTP/1.1\r\n\r\n', 400, /^bad request: missing host header\n$/],
      ['OPTIONS * HTTP/1.1\r\nHost: d\r\n\r\n', 400, /^bad request: invalid url\n$/],
      ['GET /dispatch HTTP/1.1\r\nHost: a b\r\n\r\n', 400, /^bad request: /],
      ['DELETE /dispatch HTTP/1.1\r\nHost: d\r\n\r\n', 405, /^method not allowed\n$/],
      ['PUT /dispatch HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}', 417, /^no job on 127\.0\.0\.2 to report for\n$/],
    ];
    for (const [text, status, reason] of cases) {
      const answer = await raw({ port: lab.port, localAddress: '127.0.0.2', chunks: [text], limitMs: 3_000 });
      assert.equal(answer.status, status, JSON.stringify(text.slice(0, 60)));
      assert.match(bodyOf(answer.data), reason, JSON.stringify(text.slice(0, 60)));
      assert.equal(answer.end, 'closed');
    }
    const lines = lab.logs.filter((l) => l.startsWith('http: 127.0.0.2'));
    assert.equal(lines.length, 1, `one line for ${cases.length} refusals: ${lines.join('\n')}`);
    // Another peer has a window of its own.
    assert.equal((await raw({ port: lab.port, localAddress: '127.0.0.3', chunks: ['\x00\r\n\r\n'], limitMs: 3_000 })).status, 400);
    assert.equal(lab.logs.filter((l) => l.startsWith('http: 127.0.0.3')).length, 1);
    assert.deepEqual((await lab.jobs()).map((j) => j.state), ['unassigned']);
  });

  test('a server repeating a resume it does not hold gets 416 every time, and the log one line', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(4096) }, limits: SHORT });
    for (let i = 0; i < 20; i += 1) {
      const answer = await raw({ port: lab.port, localAddress: '127.0.0.2', chunks: ['GET /dispatch HTTP/1.1\r\nHost: d\r\nRange: bytes=100-\r\n\r\n'], limitMs: 3_000 });
      assert.equal(answer.status, 416);
    }
    assert.deepEqual(lab.logs, ['http: 127.0.0.2 asked to resume a download it does not hold (bytes=100-)']);
  });

  test('the refusal log: one line per peer per window, a cap for all peers together, and what was left out is counted', () => {
    const lines: string[] = [];
    let now = 0;
    const log = limitedRejectionLog((_s, m) => lines.push(m), { windowMs: 1_000, perWindow: 3, now: () => now });
    log('a', 'a1');
    log('a', 'a2');
    log('a', 'a3');
    log('b', 'b1');
    log('c', 'c1');
    log('d', 'd1');
    log('e', 'e1');
    assert.deepEqual(lines, ['a1', 'b1', 'c1']);
    now = 1_000;
    log('a', 'a4');
    log('d', 'd2');
    // d and e were left out by the cap for all peers: counted there, once.
    assert.deepEqual(lines.slice(3), ['a4 (2 more from a not logged; 2 more from other peers not logged)', 'd2']);
  });
});

describe('reports are checked at the edge', () => {
  const reason = (text: string) => {
    const parsed = parseReport(text);
    return parsed.ok ? 'accepted' : parsed.reason;
  };
  const json = (value: unknown) => reason(JSON.stringify(value));

  test('lengths and counts past what GitHub takes are refused with a specific reason', () => {
    // What GitHub refuses only in part is filed without that part (DESIGN §6), not refused here.
    assert.equal(json({ title: 't', labels: ['x'.repeat(51)], assignees: Array.from({ length: 11 }, (_, i) => `u${'x'.repeat(40)}${i}`) }), 'accepted');
    assert.equal(json({ title: 't'.repeat(256) }), 'accepted');
    assert.equal(json({ title: '🙂'.repeat(256) }), 'accepted', 'characters, not UTF-16 units');
    assert.equal(json({ title: 't'.repeat(257) }), 'report title is longer than 256 characters');
    assert.equal(json({ title: 't', labels: Array.from({ length: 100 }, (_, i) => `l${i}`) }), 'accepted');
    assert.equal(json({ title: 't', labels: Array.from({ length: 101 }, (_, i) => `l${i}`) }), 'report has more than 100 labels');
    assert.equal(json({ title: 't', labels: ['ok', 'x'.repeat(257)] }), 'labels[1] is longer than 256 characters');
    assert.equal(json({ title: 't', assignees: Array.from({ length: 101 }, (_, i) => `u${i}`) }), 'report has more than 100 assignees');
    assert.equal(json({ title: 't', assignees: ['x'.repeat(257)] }), 'assignees[0] is longer than 256 characters');
    assert.equal(json({ title: 't', milestone: 'm'.repeat(257) }), 'milestone is longer than 256 characters');
  });

  test('wrong types and deep nesting are refused before anything is built from them', () => {
    assert.equal(json({ title: 't', labels: [1] }), 'labels must be a list of strings');
    assert.equal(json({ title: 't', labels: [['x']] }), 'labels must be a list of strings');
    assert.equal(json({ title: 't', assignees: { a: 1 } }), 'assignees must be a list of strings');
    assert.equal(json({ title: ['t'] }), 'title must be a string');
    assert.equal(json({ title: 't', body: 5 }), 'body must be a string');
    assert.equal(json({ title: 't', milestone: true }), 'milestone must be a string');
    assert.equal(reason(`{"title":"t","x":${'['.repeat(33)}${']'.repeat(33)}}`), 'report JSON nests deeper than 32 levels');
    assert.equal(reason('['.repeat(1_000_000)), 'report JSON nests deeper than 32 levels');
    assert.equal(reason(`{"title":"${'['.repeat(100)}"}`), 'accepted', 'brackets inside strings do not nest');
    assert.equal(reason(`{"title":"\\"${'{'.repeat(100)}"}`), 'accepted', 'nor after an escaped quote');
  });

  test('a refused report is a 400 with its reason over the wire, and the job is left as it was', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(4096) }, limits: SHORT });
    await boot(lab.origin, '127.0.0.2');
    const put = await send({ url: lab.url, method: 'PUT', localAddress: '127.0.0.2', timeoutMs: 5_000, body: JSON.stringify({ title: 'x'.repeat(300) }) });
    assert.deepEqual([put.status, put.body.toString()], [400, 'report title is longer than 256 characters\n']);
    assert.ok(lab.logs.some((l) => l === 'http: 127.0.0.2 PUT /dispatch refused (400): report title is longer than 256 characters'), lab.logs.join('\n'));
    assert.equal((await lab.jobs())[0]!.state, 'booting');
  });
});

describe('graceful stop', () => {
  test('a stop closes idle connections at once, refuses new ones, and lets a download in flight finish', async (t) => {
    const size = 24 * 1024 * 1024;
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(size), 'b.efi': randomBytes(4096) }, limits: { ...SHORT, headersTimeoutMs: 5_000, requestTimeoutMs: 5_000, idleTimeoutMs: 5_000, keepAliveTimeoutMs: 5_000 } });
    // A download read slowly enough to still be running when the stop comes…
    const reader = net.connect({ port: lab.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    reader.write('GET /dispatch HTTP/1.1\r\nHost: dispatch\r\n\r\n');
    const slow = slowReader(reader);
    await lab.until('the download under way', () => slow.received > 1024 * 1024);
    // …an idle keep-alive connection (a HEAD answered, nothing since)…
    const idle = net.connect({ port: lab.port, host: '127.0.0.1', localAddress: '127.0.0.3' });
    idle.write(HEAD);
    await new Promise((resolve) => idle.once('data', resolve));
    const idleClosed = new Promise<number>((resolve) => idle.once('close', () => resolve(Date.now())));
    // …and a slow-loris connection mid-headers.
    const loris = net.connect({ port: lab.port, host: '127.0.0.1', localAddress: '127.0.0.4' });
    loris.write('GET /dispa');
    const lorisClosed = new Promise<number>((resolve) => loris.once('close', () => resolve(Date.now())));
    loris.on('error', () => undefined);
    await delay(50);

    const stopAt = Date.now();
    const closing = lab.bound.close(10_000);
    // "At once" against a grace of 10 s; generous for a loaded machine.
    assert.ok((await idleClosed) - stopAt < 1_000, 'the idle connection closed at once');
    assert.ok((await lorisClosed) - stopAt < 1_000, 'the half-sent request closed at once');
    await assert.rejects(
      raw({ port: lab.port, localAddress: '127.0.0.5', chunks: [HEAD], limitMs: 1_000 }).then((r) => {
        if (r.status === null) throw new Error('refused');
        return r;
      }),
      'a new connection is not served',
    );
    await closing;
    await slow.done;
    const headers = 'HTTP/1.1 200 OK'.length;
    assert.ok(slow.received >= size + headers, `the download finished: ${slow.received} bytes`);
    assert.ok(Date.now() - stopAt < 10_000, 'the stop ended with the download, not at the end of the grace');
  });

  test('a download still running when the grace ends is cut then', async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': randomBytes(24 * 1024 * 1024) }, limits: { ...SHORT, idleTimeoutMs: 5_000 } });
    const stalled = net.connect({ port: lab.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    stalled.on('error', () => undefined);
    const gone = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
    stalled.write('GET /dispatch HTTP/1.1\r\nHost: dispatch\r\n\r\n');
    stalled.pause();
    await lab.until('the download under way', async () => (await lab.jobs())[0]!.state === 'downloading');
    const started = Date.now();
    await lab.bound.close(400);
    const took = Date.now() - started;
    assert.ok(took >= 350 && took < 2_000, `close took ${took} ms`);
    stalled.resume();
    await gone;
  });
});
