import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { SimulatedClock } from 'xstate';
import { createApp } from '../src/http/index.ts';
import { Queue } from '../src/jobs/index.ts';
import type { Report } from '../src/report/index.ts';
import { memoryWorkload } from '../src/source/index.ts';
import { fakeWorkload } from './support/workloads.ts';

const POWEROFF = memoryWorkload('poweroff.efi', Buffer.from('MZ-poweroff'));

/** The app in process, with requests that say which server they come from. */
function setup(options: { maxReportBytes?: number; submit?: (id: number, report: Report) => Promise<void> } = {}) {
  const clock = new SimulatedClock();
  const queue = new Queue([fakeWorkload('a.efi', 100), fakeWorkload('b.iso', 200, 'application/vnd.efi-iso')], { clock, downloadTimeoutMs: 60_000 });
  const submitted: Array<{ id: number; report: Report }> = [];
  const app = createApp({
    queue,
    path: '/dispatch',
    maxReportBytes: options.maxReportBytes ?? 1024,
    poweroff: POWEROFF,
    log: () => undefined,
    reports: {
      submit:
        options.submit ??
        (async (id, report) => {
          submitted.push({ id, report });
          queue.reportAccepted(id, report.title);
        }),
    },
  });
  const from = (remoteAddress: string | undefined) => (path: string, init: RequestInit = {}) =>
    app.request(path, init, remoteAddress === undefined ? {} : { incoming: { socket: { remoteAddress } } });
  return { queue, app, from, submitted };
}

async function bootToRunning(request: ReturnType<ReturnType<typeof setup>['from']>) {
  assert.equal((await request('/dispatch', { method: 'HEAD' })).status, 200);
  const get = await request('/dispatch');
  await get.arrayBuffer();
  assert.equal((await request('/dispatch', { method: 'POST' })).status, 200);
}

describe('boot routes in process', () => {
  test('HEAD answers the length and bare type with no body, and HEAD then GET agree', async () => {
    const { from } = setup();
    const server = from('10.0.0.5');
    const head = await server('/dispatch', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '100');
    assert.equal(head.headers.get('content-type'), 'application/efi');
    assert.equal(head.headers.get('accept-ranges'), 'bytes');
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    const get = await server('/dispatch');
    assert.equal(get.headers.get('content-length'), head.headers.get('content-length'));
    assert.equal(get.headers.get('content-type'), head.headers.get('content-type'));
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), Buffer.alloc(100, 'a.efi'));
  });

  test('an IPv4-mapped IPv6 peer is the same server as its IPv4 form', async () => {
    const { from, queue } = setup();
    await from('::ffff:10.0.0.5')('/dispatch', { method: 'HEAD' });
    assert.equal(queue.list()[0]!.ip, '10.0.0.5');
    // The same server over plain IPv4 is a retry, not a second server.
    await from('10.0.0.5')('/dispatch', { method: 'HEAD' });
    assert.equal(queue.list()[1]!.state, 'unassigned');
  });

  test('a request whose peer is unknown is refused, not guessed', async () => {
    const { from } = setup();
    const response = await from(undefined)('/dispatch', { method: 'HEAD' });
    assert.equal(response.status, 400);
  });

  test('a resumed range from the holder is 206 of the same workload', async () => {
    const { from } = setup();
    const server = from('10.0.0.5');
    await server('/dispatch', { method: 'HEAD' });
    const part = await server('/dispatch', { headers: { Range: 'bytes=40-99' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), 'bytes 40-99/100');
    assert.equal(part.headers.get('content-length'), '60');
    assert.equal((await part.arrayBuffer()).byteLength, 60);
  });

  test('no job left: poweroff.efi, from HEAD and GET alike', async () => {
    const { from } = setup();
    await from('10.0.0.1')('/dispatch', { method: 'HEAD' });
    await from('10.0.0.2')('/dispatch', { method: 'HEAD' });
    const head = await from('10.0.0.3')('/dispatch', { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), String(POWEROFF.size));
    assert.equal(head.headers.get('content-type'), 'application/efi');
    const get = await from('10.0.0.3')('/dispatch');
    assert.equal(Buffer.from(await get.arrayBuffer()).toString(), 'MZ-poweroff');
  });
});

describe('beacon routes in process', () => {
  test('a report body over the limit without Content-Length is refused while it is read', async () => {
    const { from } = setup({ maxReportBytes: 1024 });
    const server = from('10.0.0.5');
    await bootToRunning(server);
    let pulled = 0;
    // An endless chunked upload: only a check made while reading can stop it.
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1;
        if (pulled > 10_000) controller.close();
        else controller.enqueue(new Uint8Array(512).fill(0x20));
      },
    });
    const response = await server('/dispatch', { method: 'PUT', body: endless, duplex: 'half' } as RequestInit);
    assert.equal(response.status, 413);
    assert.ok(pulled < 10, `stopped after ${pulled} chunks`);
  });

  test('a report is acknowledged only after it is stored', async () => {
    let release!: () => void;
    const stored = new Promise<void>((resolve) => (release = resolve));
    const { from } = setup({ submit: () => stored });
    const server = from('10.0.0.5');
    await bootToRunning(server);
    let answered = false;
    const pending = Promise.resolve(server('/dispatch', { method: 'PUT', body: '{"title":"t"}' })).then((r) => {
      answered = true;
      return r;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(answered, false, 'no answer before the report is durable');
    release();
    assert.equal((await pending).status, 200);
  });

  test('a store that fails is a 500, never a 200', async () => {
    const { from } = setup({ submit: () => Promise.reject(new Error('disk full')) });
    const server = from('10.0.0.5');
    await bootToRunning(server);
    const response = await server('/dispatch', { method: 'PUT', body: '{"title":"t"}' });
    assert.equal(response.status, 500);
  });

  test('reports carry what beacon sent', async () => {
    const { from, submitted } = setup();
    const server = from('10.0.0.5');
    await bootToRunning(server);
    const response = await server('/dispatch', {
      method: 'PUT',
      body: JSON.stringify({ title: 'T', body: 'B', labels: ['l'], assignees: ['a'], milestone: 'm' }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(submitted, [{ id: 0, report: { title: 'T', body: 'B', labels: ['l'], assignees: ['a'], milestone: 'm' } }]);
  });
});

describe('monitoring API in process', () => {
  test('/api/jobs lists every job with the contract fields', async () => {
    const { from } = setup();
    await from('10.0.0.5')('/dispatch', { method: 'HEAD' });
    const response = await from('10.0.0.9')('/api/jobs');
    assert.equal(response.status, 200);
    const { jobs } = (await response.json()) as { jobs: Array<Record<string, unknown>> };
    assert.deepEqual(Object.keys(jobs[0]!).sort(), ['attempts', 'contentType', 'ip', 'name', 'reason', 'reports', 'since', 'size', 'state'].sort());
    assert.deepEqual(
      jobs.map((j) => [j.name, j.state, j.ip, j.size, j.contentType]),
      [
        ['a.efi', 'assigned', '10.0.0.5', 100, 'application/efi'],
        ['b.iso', 'unassigned', null, 200, 'application/vnd.efi-iso'],
      ],
    );
    assert.match(String(jobs[0]!.since), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  test('/metrics counts jobs by state in Prometheus text', async () => {
    const { from } = setup();
    await from('10.0.0.5')('/dispatch', { method: 'HEAD' });
    const response = await from('10.0.0.9')('/metrics');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    assert.match(text, /^# TYPE dispatch_jobs gauge$/m);
    assert.match(text, /^dispatch_jobs\{state="assigned"\} 1$/m);
    assert.match(text, /^dispatch_jobs\{state="unassigned"\} 1$/m);
    assert.match(text, /^dispatch_jobs\{state="failed"\} 0$/m);
    assert.match(text, /^dispatch_download_attempts_total 0$/m);
    // Every sample line is `name{labels} value` or `name value`.
    for (const line of text.trimEnd().split('\n')) assert.match(line, /^(# (HELP|TYPE) .+|[a-z_]+(\{state="[a-z]+"\})? \d+)$/);
  });

  test('/ is a live page that reads /api/jobs and inserts job text as text', async () => {
    const { from } = setup();
    const response = await from('10.0.0.9')('/');
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    const html = await response.text();
    assert.match(html, /fetch\('\/api\/jobs'/);
    assert.doesNotMatch(html, /innerHTML|<script src|<link /);
    assert.equal((await from('10.0.0.9')('/', { method: 'POST' })).status, 405);
  });

  test('/api/jobs allows only GET and HEAD', async () => {
    const { from } = setup();
    const response = await from('10.0.0.9')('/api/jobs', { method: 'POST' });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET, HEAD');
  });
});
