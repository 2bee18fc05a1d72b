import { strict as assert } from 'node:assert';
import { readdir, readFile, truncate } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FIRMWARE_HEADERS } from './fleet/http.ts';
import { splitReport, startLab, type ApiJob, type Lab } from './fleet/lab.ts';
import { sha256 } from './fleet/simulator.ts';

// DESIGN §4 through real sockets: each simulated server connects from its own
// loopback address, and dispatch knows it by that address alone.

const POWEROFF = await readFile(new URL('../efi/poweroff.efi', import.meta.url));
const THREE = { 'a.efi': 4096, 'b.img': 5000, 'c.iso': 6000 };
const STATES = ['unassigned', 'assigned', 'downloading', 'booting', 'reported', 'finished', 'failed'];

/** HEAD, whole GET, `beacon boot`: the server now runs its workload. */
async function bootToRunning(lab: Lab, index: number) {
  const server = lab.server(index);
  assert.equal((await server.head()).status, 200);
  assert.equal((await server.get()).status, 200);
  assert.equal((await server.post()).status, 200);
  return server;
}

async function reportFiles(lab: Lab): Promise<string[]> {
  return (await readdir(lab.reports)).filter((name) => name.endsWith('.md')).sort();
}

/**
 * A 20 MB report PUT from `ip` on a connection of its own, written whole
 * while dispatch may already be answering: the status it read, and any error
 * its request or socket met (a reset would show here).
 */
function hugePut(url: string, ip: string, headers: Readonly<Record<string, string>>): Promise<{ status: number | undefined; errors: string[] }> {
  const huge = Buffer.from(`{"title":"huge","body":"${'x'.repeat(20_000_000)}"}`);
  const target = new URL(url);
  return new Promise((resolve) => {
    const errors: string[] = [];
    let status: number | undefined;
    const req = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: 'PUT', localAddress: ip, agent: false, headers: { 'Content-Length': String(huge.byteLength), ...headers } });
    req.on('response', (res) => {
      status = res.statusCode;
      res.resume();
    });
    req.on('error', (err) => errors.push(err.message));
    req.on('socket', (socket) => {
      socket.on('error', (err) => errors.push(`socket: ${err.message}`));
      socket.on('close', () => resolve({ status, errors }));
    });
    req.end(huge);
  });
}

describe('HEAD: the firmware asks what it will boot', () => {
  test('HEAD answers 200 with the workload length, its bare type, Accept-Ranges and no body', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const head = await lab.server(0).head();
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '4096');
    assert.equal(head.headers['content-type'], 'application/efi');
    assert.equal(head.headers['accept-ranges'], 'bytes');
    assert.equal(head.body.byteLength, 0);
  });

  test('HEAD assigns the job to the server and never moves it past assigned', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    for (let i = 0; i < 4; i += 1) assert.equal((await server.head()).status, 200);
    const [a, b] = await lab.jobs();
    assert.deepEqual([a!.state, a!.ip, a!.attempts], ['assigned', '127.0.0.2', 0]);
    assert.deepEqual([b!.state, b!.ip], ['unassigned', null]);
  });

  test('HEAD and the GET that follows it describe the same bytes, for every server', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    for (const index of [0, 1, 2]) {
      const server = lab.server(index);
      const head = await server.head();
      const get = await server.get();
      assert.equal(get.headers['content-length'], head.headers['content-length'], server.ip);
      assert.equal(get.headers['content-type'], head.headers['content-type'], server.ip);
      assert.equal(get.body.byteLength, Number(head.headers['content-length']), server.ip);
      // EDK2 keeps one connection for both.
      assert.equal(get.localPort, head.localPort, server.ip);
    }
  });
});

describe('GET: the firmware downloads it', () => {
  test('GET streams the exact bytes of the workload and the job is downloading', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    const get = await server.get();
    assert.equal(get.status, 200);
    assert.equal(get.headers['content-length'], '4096');
    assert.ok(get.body.equals(lab.bytes.get('a.efi')!), 'the bytes of a.efi');
    const job = await lab.job('a.efi');
    assert.deepEqual([job.state, job.ip, job.attempts], ['downloading', server.ip, 1]);
  });

  test('a completed transfer is recorded on the job', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    await server.get();
    // The end of a transfer is known when the last byte leaves, just after the client has it.
    await lab.until('the transfer to be recorded', () => lab.view('a.efi').timeline.some((e) => e.what === 'download complete (4096 bytes)'));
    assert.equal(lab.view('a.efi').broken, 0);
  });

  test('a GET with no HEAD before it assigns and streams the next workload', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const get = await lab.server(0).get();
    assert.equal(get.status, 200);
    assert.ok(get.body.equals(lab.bytes.get('a.efi')!));
    assert.equal((await lab.job('a.efi')).state, 'downloading');
  });

  test('each workload is served with the UEFI type of its extension', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const expected = [
      ['a.efi', 'application/efi'],
      ['b.img', 'application/vnd.efi-img'],
      ['c.iso', 'application/vnd.efi-iso'],
    ];
    for (const [index, [name, type]] of expected.entries()) {
      const server = lab.server(index);
      const head = await server.head();
      const get = await server.get();
      assert.equal(head.headers['content-type'], type, name);
      assert.equal(get.headers['content-type'], type, name);
      assert.ok(get.body.equals(lab.bytes.get(name!)!), name);
      assert.equal((await lab.job(name!)).contentType, type);
    }
  });
});

describe('nothing left to run', () => {
  test('HEAD describes poweroff.efi and GET sends its bytes', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 4096 } });
    await lab.server(0).head();
    const late = lab.server(1);
    const head = await late.head();
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(POWEROFF.byteLength));
    assert.equal(head.headers['content-type'], 'application/efi');
    const get = await late.get();
    assert.equal(get.status, 200);
    assert.ok(get.body.equals(POWEROFF), 'the bytes of efi/poweroff.efi');
    // The job stays with the server that has it.
    const [a] = await lab.jobs();
    assert.deepEqual([a!.state, a!.ip], ['assigned', '127.0.0.2']);
  });
});

/** A GET by a reader that stops reading for a while after each chunk: the socket fills, and writes wait on it. */
function slowGet(url: string, localAddress: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { localAddress, headers: { ...FIRMWARE_HEADERS } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        response.pause();
        setTimeout(() => response.resume(), 20);
      });
      response.on('end', () => resolve(Buffer.concat(chunks)));
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}

describe('resumed downloads', () => {
  test('a Range from the server that holds the job is 206 with that range of the same workload', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    // b.img and c.iso wait in the pool: the resume must not hand either out.
    const part = await server.get('bytes=100-4095');
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], 'bytes 100-4095/4096');
    assert.equal(part.headers['content-length'], '3996');
    assert.equal(part.headers['content-type'], 'application/efi');
    assert.ok(part.body.equals(lab.bytes.get('a.efi')!.subarray(100)));
    const jobs = await lab.jobs();
    assert.deepEqual(
      jobs.map((j) => [j.name, j.state]),
      [
        ['a.efi', 'downloading'],
        ['b.img', 'unassigned'],
        ['c.iso', 'unassigned'],
      ],
    );
  });

  test('a download broken part-way resumes with a Range and the pieces are the whole workload', async (t) => {
    const size = 8 * 1024 * 1024;
    const lab = await startLab(t, { workloads: { 'big.img': size, 'next.efi': 4096 } });
    const server = lab.server(0);
    const head = await server.head();
    const first = await server.request('GET', { headers: { Accept: '*/*', 'User-Agent': 'UefiHttpBoot/1.0' }, breakAfter: 65_536 });
    assert.equal(first.broken, true);
    await lab.until('the broken transfer to be noticed', () => lab.view('big.img').broken === 1);
    const rest = await server.get(`bytes=65536-${size - 1}`);
    assert.equal(rest.status, 206);
    assert.equal(rest.headers['content-range'], `bytes 65536-${size - 1}/${size}`);
    assert.equal(rest.headers['content-type'], head.headers['content-type']);
    assert.ok(Buffer.concat([first.body, rest.body]).equals(lab.bytes.get('big.img')!), 'the stitched bytes are big.img');
    const job = await lab.job('big.img');
    assert.deepEqual([job.state, job.ip, job.attempts], ['downloading', server.ip, 2]);
    assert.equal((await lab.job('next.efi')).state, 'unassigned');
  });

  test('read buffers reused across downloads never mix bytes: many at once, of every size, some cut short, each exact', async (t) => {
    // Sizes around the 64 KiB and 512 KiB read sizes, small and over several chunks: a buffer handed back
    // too early, or to the wrong download, would show up as another workload's bytes.
    const sizes = [1, 1000, 65_535, 65_536, 65_537, 300_000, 524_288, 524_289, 1_300_000];
    const workloads = Object.fromEntries(Array.from({ length: 54 }, (_, i) => [`w${String(i).padStart(2, '0')}.efi`, sizes[i % sizes.length]!]));
    const lab = await startLab(t, { workloads });
    for (let round = 0; round < 2; round += 1) {
      const servers = Array.from({ length: 27 }, (_, i) => lab.server(round * 27 + i));
      const gets = await Promise.all(
        servers.map(async (server, i) => {
          const head = await server.head();
          const size = Number(head.headers['content-length']);
          // Every third download breaks part-way (its buffers go back with a read or a write still pending), then resumes.
          if (i % 3 === 1) return slowGet(lab.url, server.ip);
          if (i % 3 === 0 && size > 2) {
            const first = await server.request('GET', { headers: { ...FIRMWARE_HEADERS }, breakAfter: Math.floor(size / 2) });
            const rest = await server.get(`bytes=${first.body.byteLength}-${size - 1}`);
            return Buffer.concat([first.body, rest.body]);
          }
          return (await server.get()).body;
        }),
      );
      // Each server got, byte for byte, the workload it holds, and no two hold the same.
      const held = new Map((await lab.jobs()).map((job) => [job.ip, job.name]));
      gets.forEach((body, i) => {
        const name = held.get(servers[i]!.ip);
        assert.ok(name, `${servers[i]!.ip} holds a job`);
        assert.ok(body.equals(lab.bytes.get(name)!), `${servers[i]!.ip} got exactly ${name} (${body.byteLength} bytes, ${lab.names.get(sha256(body)) ?? 'no workload'})`);
      });
      assert.equal(new Set(servers.map((server) => held.get(server.ip))).size, servers.length, 'each server holds a workload of its own');
    }
  });

  test('a workload file that shrank after its size was announced breaks the transfer rather than ending it short', async (t) => {
    const size = 2 * 1024 * 1024;
    const lab = await startLab(t, { workloads: { 'big.img': size } });
    const server = lab.server(0);
    assert.equal((await server.head()).headers['content-length'], String(size));
    await truncate(join(lab.dir, 'workloads', 'big.img'), size / 2);
    await assert.rejects(server.get(), 'the client sees the connection cut, not a complete body');
    await lab.until('the broken transfer to be noticed', () => lab.view('big.img').broken === 1);
    assert.equal((await lab.job('big.img')).state, 'downloading', 'never counted as downloaded');
  });

  test('a range past the end is 416 with Content-Range bytes */size, and the job stays held', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    const answer = await server.get('bytes=4096-');
    assert.equal(answer.status, 416);
    assert.equal(answer.headers['content-range'], 'bytes */4096');
    const a = await lab.job('a.efi');
    assert.deepEqual([a.state, a.ip], ['assigned', server.ip]);
  });

  test('a resume from a server that holds nothing is 416, never the next job', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const answer = await lab.server(0).get('bytes=100-4095');
    assert.equal(answer.status, 416);
    assert.deepEqual(
      (await lab.jobs()).map((j) => j.state),
      ['unassigned', 'unassigned', 'unassigned'],
    );
  });

  test('a Range from byte 0 is a fresh download, not a resume', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const answer = await lab.server(0).get('bytes=0-99');
    assert.equal(answer.status, 206);
    assert.equal(answer.headers['content-range'], 'bytes 0-99/4096');
    assert.ok(answer.body.equals(lab.bytes.get('a.efi')!.subarray(0, 100)));
    assert.equal((await lab.job('a.efi')).ip, '127.0.0.2');
  });

  test('a broken poweroff.efi download resumes with poweroff.efi', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 4096 } });
    await lab.server(0).head();
    const late = lab.server(1);
    await late.head();
    const rest = await late.get(`bytes=100-${POWEROFF.byteLength - 1}`);
    assert.equal(rest.status, 206);
    assert.equal(rest.headers['content-range'], `bytes 100-${POWEROFF.byteLength - 1}/${POWEROFF.byteLength}`);
    assert.ok(rest.body.equals(POWEROFF.subarray(100)));
  });

  test('every HEAD and GET answer carries Accept-Ranges: bytes', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 4096 } });
    const holder = lab.server(0);
    const late = lab.server(1);
    const stranger = lab.server(2);
    const answers = {
      'HEAD job': await holder.head(),
      'GET job': await holder.get(),
      'GET range': await holder.get('bytes=10-19'),
      'GET range past the end': await holder.get('bytes=9999-'),
      'HEAD poweroff': await late.head(),
      'GET poweroff': await late.get(),
      'GET range of poweroff': await late.get('bytes=10-19'),
      // Nothing left to hand out: poweroff.efi is all a stranger's resume could be.
      'GET range holding nothing, queue drained': await stranger.get('bytes=10-19'),
    };
    assert.deepEqual(
      Object.entries(answers).map(([what, a]) => [what, a.status, a.headers['accept-ranges']]),
      [
        ['HEAD job', 200, 'bytes'],
        ['GET job', 200, 'bytes'],
        ['GET range', 206, 'bytes'],
        ['GET range past the end', 416, 'bytes'],
        ['HEAD poweroff', 200, 'bytes'],
        ['GET poweroff', 200, 'bytes'],
        ['GET range of poweroff', 206, 'bytes'],
        ['GET range holding nothing, queue drained', 206, 'bytes'],
      ],
    );
  });
});

describe('IPv4-mapped IPv6', () => {
  test('a server reaching a dual-stack listener over IPv4 is known by its plain IPv4 address', async (t) => {
    let lab: Lab;
    try {
      lab = await startLab(t, { workloads: THREE, host: '::' });
    } catch (err) {
      t.skip(`cannot listen on [::] here (${(err as Error).message}): IPv6 is off on this machine`);
      return;
    }
    assert.match(lab.running.url, /^http:\/\/\[::\]:/);
    const server = lab.server(3);
    await server.head();
    const a = await lab.job('a.efi');
    assert.equal(a.ip, '127.0.0.5');
    // Same server, same key: its GET continues the job it was given.
    const get = await server.get();
    assert.ok(get.body.equals(lab.bytes.get('a.efi')!));
    assert.deepEqual(
      (await lab.jobs()).map((j) => [j.state, j.ip]),
      [
        ['downloading', '127.0.0.5'],
        ['unassigned', null],
        ['unassigned', null],
      ],
    );
  });
});

describe('POST: beacon boot', () => {
  test('POST after a download answers 200 and the job is booting', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    await server.get();
    const answer = await server.post();
    assert.equal(answer.status, 200);
    assert.equal((await lab.job('a.efi')).state, 'booting');
  });

  test('POST again while booting answers 200 and the job stays booting', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = await bootToRunning(lab, 0);
    assert.equal((await server.post()).status, 200);
    const a = await lab.job('a.efi');
    assert.deepEqual([a.state, a.ip], ['booting', server.ip]);
  });

  test('POST from a server with no downloaded job is 417', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    assert.equal((await lab.server(0).post()).status, 417);
    // Only told its job, not downloaded it: nothing can be running.
    const assigned = lab.server(1);
    await assigned.head();
    assert.equal((await assigned.post()).status, 417);
    assert.deepEqual(
      (await lab.jobs()).map((j) => j.state),
      ['assigned', 'unassigned', 'unassigned'],
    );
  });
});

describe('PUT: beacon report', () => {
  test('a report is acknowledged once its file is written: front matter, then the body verbatim', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = await bootToRunning(lab, 0);
    const report = {
      title: 'memtest: 2 errors',
      body: '  indented first line\n---\nnot: front matter\r\ntrailing spaces   \n\nünïcødé ✓ "quoted" `code`\n\n',
      labels: ['hw', 'dimm-b2'],
      assignees: ['alice'],
      milestone: 'v2',
    };
    const answer = await server.put(report);
    assert.equal(answer.status, 200);
    // No waiting: a 200 means the file is already there.
    const files = await reportFiles(lab);
    assert.equal(files.length, 1);
    const { front, body } = splitReport(await readFile(join(lab.reports, files[0]!), 'utf8'));
    assert.deepEqual(
      ['title', 'labels', 'assignees', 'milestone', 'workload', 'ip'].map((key) => [key, JSON.parse(front[key]!)]),
      [
        ['title', report.title],
        ['labels', report.labels],
        ['assignees', report.assignees],
        ['milestone', report.milestone],
        ['workload', 'a.efi'],
        ['ip', server.ip],
      ],
    );
    assert.equal(body, report.body);
  });

  test('a report with only a title is filed with empty labels, assignees and milestone', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = await bootToRunning(lab, 0);
    assert.equal((await server.put({ title: 'ok' })).status, 200);
    const [file] = await reportFiles(lab);
    const { front, body } = splitReport(await readFile(join(lab.reports, file!), 'utf8'));
    assert.deepEqual([front.labels, front.assignees, front.milestone, body], ['[]', '[]', 'null', '']);
  });

  test('a chunked report whose characters are split across chunks is stored as sent', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = await bootToRunning(lab, 0);
    const url = new URL(lab.url);
    const bytes = Buffer.from(JSON.stringify({ title: 'chunks', body: 'ünïcødé ✓ '.repeat(200) }));
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'PUT', localAddress: server.ip }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      // 7-byte pieces, each its own chunk: most cut a two- or three-byte character in two.
      const send = (at: number): void => {
        if (at >= bytes.length) return void req.end();
        req.write(bytes.subarray(at, at + 7), () => setImmediate(send, at + 7));
      };
      send(0);
    });
    assert.deepEqual(answer, { status: 200, text: 'report stored\n' });
    const [file] = await reportFiles(lab);
    assert.equal(splitReport(await readFile(join(lab.reports, file!), 'utf8')).body, 'ünïcødé ✓ '.repeat(200));
  });

  test('a report that starts with a UTF-8 byte-order mark is read as the JSON after it', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = await bootToRunning(lab, 0);
    const answer = await server.put(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"title":"from a Windows tool"}')]));
    assert.equal(answer.status, 200, answer.body.toString('utf8'));
  });

  test('PUT from a server with no job to report for is 417', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    assert.equal((await lab.server(0).put({ title: 'from nowhere' })).status, 417);
    const assigned = lab.server(1);
    await assigned.head();
    assert.equal((await assigned.put({ title: 'before download' })).status, 417);
    assert.deepEqual(await reportFiles(lab), []);
    assert.deepEqual(
      (await lab.jobs()).map((j) => [j.state, j.reports.length]),
      [
        ['assigned', 0],
        ['unassigned', 0],
        ['unassigned', 0],
      ],
    );
  });

  test('a report that is not JSON is 400 with a short reason', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = await bootToRunning(lab, 0);
    const answers = await Promise.all(['{"title": "unterminated', 'title=x', ''].map((body) => server.put(body)));
    assert.deepEqual(
      answers.map((a) => [a.status, a.body.toString('utf8')]),
      [
        [400, 'report is not valid JSON\n'],
        [400, 'report is not valid JSON\n'],
        [400, 'report is not valid JSON\n'],
      ],
    );
    const other = await server.put('["title"]');
    assert.deepEqual([other.status, other.body.toString('utf8')], [400, 'report must be a JSON object\n']);
  });

  test('a report without a title is 400', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = await bootToRunning(lab, 0);
    for (const report of [{}, { body: 'results' }, { title: '   ' }, { title: null }]) {
      const answer = await server.put(report);
      assert.deepEqual([answer.status, answer.body.toString('utf8')], [400, 'report needs a title\n'], JSON.stringify(report));
    }
    assert.deepEqual(await reportFiles(lab), []);
  });

  test('a report over the limit with a Content-Length is 413, and the client still sending it reads that answer', async (t) => {
    const lab = await startLab(t, { workloads: THREE, maxReportBytes: 1024 });
    const server = await bootToRunning(lab, 0);
    // The 413 comes while the client still sends, and the connection closes
    // after it (no keep-alive agent): the client must read the answer, and
    // its writes under way must not be met with a reset.
    for (let i = 0; i < 3; i += 1) assert.deepEqual(await hugePut(lab.url, server.ip, {}), { status: 413, errors: [] });
    assert.deepEqual(await reportFiles(lab), []);
  });

  test('an expectation other than 100-continue is 417, and the client still sending its body reads that answer', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = await bootToRunning(lab, 0);
    // Node hands such a request to dispatch before any route (checkExpectation);
    // the 417 comes while the client still sends, and the connection closes
    // after it: the client must read the answer, not meet a reset.
    for (let i = 0; i < 3; i += 1) assert.deepEqual(await hugePut(lab.url, server.ip, { Expect: 'tea' }), { status: 417, errors: [] });
    assert.deepEqual(await reportFiles(lab), []);
  });

  test('a report over the limit announced with Expect: 100-continue is refused before its body is sent', async (t) => {
    const lab = await startLab(t, { workloads: THREE, maxReportBytes: 1024 });
    const server = await bootToRunning(lab, 0);
    const huge = Buffer.from(`{"title":"huge","body":"${'x'.repeat(20_000_000)}"}`);
    const answer = await server.put(huge, { expectContinue: true });
    assert.equal(answer.status, 413);
    assert.equal(answer.bodySent, false);
    // Under the limit, the same client is told to continue and the report is stored.
    const small = await lab.server(0).put({ title: 'small' }, { expectContinue: true });
    assert.deepEqual([small.status, small.bodySent], [200, true]);
  });

  test('a chunked report over the limit is refused while it is still being sent', async (t) => {
    const lab = await startLab(t, { workloads: THREE, maxReportBytes: 1024 });
    const server = await bootToRunning(lab, 0);
    const url = new URL(lab.url);
    // No Content-Length: the limit can only be seen by counting what arrives.
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'PUT', localAddress: server.ip, headers: { 'Content-Type': 'application/json' } });
    t.after(() => req.destroy());
    const answered = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
    });
    req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s while the upload was open')));
    req.write('{"title":"endless","body":"');
    for (let i = 0; i < 8; i += 1) req.write('x'.repeat(512));
    const response = await answered;
    assert.equal(response.statusCode, 413);
    assert.equal(req.getHeader('content-length'), undefined);
    assert.equal(req.writableEnded, false, 'answered before the upload ended');
    response.resume();
    assert.deepEqual(await reportFiles(lab), []);
  });

  test('a refused report leaves the job as it was', async (t) => {
    const lab = await startLab(t, { workloads: THREE, maxReportBytes: 1024 });
    const server = await bootToRunning(lab, 0);
    const before: ApiJob = await lab.job('a.efi');
    const statuses = [
      (await server.put('not json')).status,
      (await server.put({ body: 'no title' })).status,
      (await server.put({ title: 'big', body: 'x'.repeat(2048) })).status,
    ];
    assert.deepEqual(statuses, [400, 400, 413]);
    assert.deepEqual(await lab.job('a.efi'), before);
    assert.equal(before.state, 'booting');
  });
});

describe('other requests', () => {
  test('other methods on the boot path are 405 with Allow: GET, HEAD, POST, PUT', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    for (const method of ['DELETE', 'PATCH', 'OPTIONS']) {
      const answer = await server.request(method);
      assert.deepEqual([answer.status, answer.headers.allow], [405, 'GET, HEAD, POST, PUT'], method);
    }
    assert.deepEqual(
      (await lab.jobs()).map((j) => j.state),
      ['unassigned', 'unassigned', 'unassigned'],
    );
  });

  test('other paths are 404 and touch no job', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    // Not `/`: DESIGN §4 reserves it for the live web page.
    for (const [method, path] of [
      ['GET', '/dispatch/x'],
      ['HEAD', '/dispatch/x'],
      ['GET', '/dispatchx'],
      ['GET', '/favicon.ico'],
      ['PUT', '/dispatch/report'],
      ['POST', '/boot'],
    ] as const) {
      const answer = await server.request(method, { path });
      assert.equal(answer.status, 404, `${method} ${path}`);
    }
    assert.deepEqual(
      (await lab.jobs()).map((j) => j.state),
      ['unassigned', 'unassigned', 'unassigned'],
    );
  });
});

describe('GET /api/jobs', () => {
  test('lists every job with name, state, ip, size, contentType, attempts, since, reports and reason', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const first = await bootToRunning(lab, 0);
    await first.put({ title: 'done' });
    await lab.running.reporter.idle();
    await lab.server(1).head();
    const answer = await lab.server(5).request('GET', { path: '/api/jobs' });
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers['content-type']), /^application\/json/);
    const { jobs } = JSON.parse(answer.body.toString('utf8')) as { jobs: Array<Record<string, unknown>> };
    assert.equal(jobs.length, 3);
    for (const job of jobs) {
      assert.deepEqual(Object.keys(job).sort(), ['attempts', 'contentType', 'ip', 'name', 'reason', 'reports', 'since', 'size', 'state']);
      assert.ok(STATES.includes(String(job.state)), `state ${String(job.state)}`);
      assert.match(String(job.since), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(Array.isArray(job.reports));
    }
    assert.deepEqual(
      jobs.map((j) => [j.name, j.state, j.ip, j.size, j.contentType, j.attempts, (j.reports as unknown[]).length, j.reason]),
      [
        ['a.efi', 'finished', '127.0.0.2', 4096, 'application/efi', 1, 1, null],
        ['b.img', 'assigned', '127.0.0.3', 5000, 'application/vnd.efi-img', 0, 0, null],
        ['c.iso', 'unassigned', null, 6000, 'application/vnd.efi-iso', 0, 0, null],
      ],
    );
  });
});
