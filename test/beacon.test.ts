import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runBeacon } from '../beacon/cli.ts';
import { GLOBAL_VARIABLE_GUID } from '../beacon/efivars.ts';
import { httpClient } from '../beacon/http.ts';
import { FIRMWARE_HEADERS, send } from './fleet/http.ts';
import { splitReport, startLab, type Cleanup, type Lab } from './fleet/lab.ts';

// beacon as a workload runs it (`node --import tsx beacon/main.ts`, a process of its own)
// against real dispatch instances on loopback. beacon connects from 127.0.0.1, and
// dispatch knows a server by its address, so the firmware's HEAD and GET come from
// 127.0.0.1 too.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'beacon/main.ts');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

interface RunOptions {
  readonly env?: Readonly<Record<string, string>>;
  /** Piped to stdin; without it stdin is /dev/null. */
  readonly stdin?: string;
  readonly limitMs?: number;
}

/** Run beacon to the end (killed after `limitMs`: a hang is a failure, not a stuck run). */
export async function beacon(args: readonly string[], options: RunOptions = {}): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  if (options.env?.DISPATCH_URL === undefined) delete env.DISPATCH_URL;
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env, stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  const limitMs = options.limitMs ?? 30_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(signal, null, `beacon ${args.join(' ')} was killed after ${limitMs} ms; stderr: ${stderr}`);
  return { code, stdout, stderr, ms: Date.now() - started };
}

let empty: string;
before(async () => {
  empty = await mkdtemp(join(tmpdir(), 'beacon-no-efivars-'));
});
after(() => rm(empty, { recursive: true, force: true }));

/** No firmware URIs and no mDNS: only the URLs a test gives count. */
const only = () => ['--no-mdns', '--efivars', empty];

/** The firmware's part: HEAD then GET from 127.0.0.1, as EDK2 does before the workload runs. */
async function download(lab: Lab): Promise<void> {
  for (const method of ['HEAD', 'GET']) {
    const answer = await send({ url: lab.url, method, localAddress: '127.0.0.1', headers: { ...FIRMWARE_HEADERS }, timeoutMs: 5_000 });
    assert.equal(answer.status, 200, `${method} ${lab.url}`);
  }
}

async function reports(lab: Lab): Promise<Array<ReturnType<typeof splitReport>>> {
  const names = (await readdir(lab.reports).catch(() => [])).filter((name) => name.endsWith('.md')).sort();
  return Promise.all(names.map(async (name) => splitReport(await readFile(join(lab.reports, name), 'utf8'))));
}

/** One line, nothing else: what a person (or a journal) sees. */
function oneLine(text: string): string {
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line: ${JSON.stringify(text)}`);
  return lines[0]!;
}

interface FakeRequest {
  readonly method: string;
  readonly body: string;
  readonly at: number;
}

/** A stand-in for dispatch that answers from a script (the last answer repeats), or never when `hang`. */
async function fake(t: Cleanup, script: ReadonlyArray<readonly [number, string]>, options: { hang?: boolean } = {}) {
  const requests: FakeRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', body, at: Date.now() });
      if (options.hang) return;
      const [status, text] = script[Math.min(requests.length - 1, script.length - 1)]!;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/dispatch`, requests };
}

/** A Boot#### efivarfs file whose device path is one URI node (the short form). */
function bootOption(url: string): Buffer {
  const uri = Buffer.from(url, 'ascii');
  const path = Buffer.concat([Buffer.from([0x03, 0x18]), Buffer.from(new Uint16Array([4 + uri.byteLength]).buffer), uri, Buffer.from([0x7f, 0xff, 0x04, 0x00])]);
  const head = Buffer.alloc(10);
  head.writeUInt32LE(7, 0);
  head.writeUInt32LE(1, 4);
  head.writeUInt16LE(path.byteLength, 8);
  return Buffer.concat([head, Buffer.from('dispatch\0', 'utf16le'), path]);
}

/** A directory laid out like efivarfs with these URLs as Boot0001, Boot0002, … in BootOrder. */
async function efivars(t: Cleanup, urls: readonly string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'beacon-efivars-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const order = Buffer.alloc(4 + 2 * urls.length);
  order.writeUInt32LE(7, 0);
  for (const [i, url] of urls.entries()) {
    const number = i + 1;
    await writeFile(join(dir, `Boot${number.toString(16).toUpperCase().padStart(4, '0')}-${GLOBAL_VARIABLE_GUID}`), bootOption(url));
    order.writeUInt16LE(number, 4 + 2 * i);
  }
  await writeFile(join(dir, `BootOrder-${GLOBAL_VARIABLE_GUID}`), order);
  return dir;
}

describe('beacon boot', () => {
  test('after the firmware downloaded its workload, beacon boot exits 0, names the dispatch, and the job is booting', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 2048 } });
    await download(lab);
    const run = await beacon(['--server', lab.url, ...only(), 'boot']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(oneLine(run.stdout), `beacon: boot taken by ${lab.url} (--server): booting a.efi`);
    assert.equal(run.stderr, '');
    assert.deepEqual([(await lab.job('a.efi')).state, (await lab.job('a.efi')).ip], ['booting', '127.0.0.1']);
  });

  test('a dispatch that holds no job for this server answers 417, and with nothing else to try beacon exits 1 with one line', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 2048 } });
    const run = await beacon(['--server', lab.url, ...only(), 'boot']);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.equal(oneLine(run.stderr), `beacon: boot: no dispatch took it: ${lab.url} (--server): 417 no workload is booting on 127.0.0.1; firmware: no HTTP boot URI in ${empty}; mDNS: off`);
  });

  test('417 falls through to the next firmware boot URI: the second dispatch, which holds the job, takes it', async (t) => {
    const first = await startLab(t, { workloads: { 'first.efi': 1024 } });
    const second = await startLab(t, { workloads: { 'second.efi': 1024 } });
    await download(second);
    const dir = await efivars(t, [first.url, second.url]);
    const run = await beacon(['--efivars', dir, '--no-mdns', '--verbose', 'boot']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(oneLine(run.stdout), `beacon: boot taken by ${second.url} (firmware): booting second.efi`);
    assert.match(run.stderr, new RegExp(`${first.url}: 417`));
    assert.equal((await second.job('second.efi')).state, 'booting');
    assert.equal((await first.job('first.efi')).state, 'unassigned');
  });

  test('417 falls through across several --server URLs, in the order given', async (t) => {
    const first = await startLab(t, { workloads: { 'first.efi': 1024 } });
    const second = await startLab(t, { workloads: { 'second.efi': 1024 } });
    await download(second);
    const run = await beacon(['--server', first.url, '--server', second.url, ...only(), 'boot']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(oneLine(run.stdout), `beacon: boot taken by ${second.url} (--server): booting second.efi`);
  });

  test('with no URL given, the firmware URI of the option this boot came from is used', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 1024 } });
    await download(lab);
    const dir = await efivars(t, ['http://127.0.0.1:1/unused', lab.url]);
    const current = Buffer.alloc(6);
    current.writeUInt32LE(7, 0);
    current.writeUInt16LE(2, 4);
    await writeFile(join(dir, `BootCurrent-${GLOBAL_VARIABLE_GUID}`), current);
    const run = await beacon(['--efivars', dir, '--no-mdns', 'boot']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(oneLine(run.stdout), `beacon: boot taken by ${lab.url} (firmware): booting a.efi`);
  });

  test('DISPATCH_URL is honoured, and --server comes before it', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 1024 } });
    await download(lab);
    const fromEnv = await beacon([...only(), 'boot'], { env: { DISPATCH_URL: lab.url } });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.equal(oneLine(fromEnv.stdout), `beacon: boot taken by ${lab.url} (DISPATCH_URL): booting a.efi`);
    const other = await fake(t, [[200, 'booting elsewhere\n']]);
    const flag = await beacon(['--server', other.url, ...only(), 'boot'], { env: { DISPATCH_URL: lab.url } });
    assert.equal(flag.code, 0, flag.stderr);
    assert.match(flag.stdout, new RegExp(`taken by ${other.url} \\(--server\\)`));
  });

  test('a 5xx is retried on the same dispatch with backoff: 503, 503, then 200 exits 0', async (t) => {
    const flaky = await fake(t, [[503, 'busy\n'], [503, 'busy\n'], [200, 'booting a.efi\n']]);
    const run = await beacon(['--server', flaky.url, ...only(), '--verbose', 'boot']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(flaky.requests.length, 3);
    assert.ok(flaky.requests.every((r) => r.method === 'POST'));
    const gaps = flaky.requests.slice(1).map((r, i) => r.at - flaky.requests[i]!.at);
    assert.ok(gaps[0]! >= 450 && gaps[1]! >= 950, `waited 0.5 s then 1 s: ${gaps.join(', ')} ms`);
    assert.match(run.stderr, /503 busy/);
    assert.match(run.stderr, /trying again in 0\.5s/);
  });

  test('a dispatch that keeps failing is given up after 4 tries, and the next one takes it', async (t) => {
    const broken = await fake(t, [[500, 'internal error\n']]);
    const lab = await startLab(t, { workloads: { 'a.efi': 1024 } });
    await download(lab);
    const run = await beacon(['--server', broken.url, '--server', lab.url, ...only(), 'boot']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(broken.requests.length, 4);
    assert.match(run.stdout, new RegExp(`taken by ${lab.url}`));
  });

  test('nothing left to try: exit 1 with one line naming every candidate and what it said', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 1024 } });
    const gone = 'http://127.0.0.1:1/dispatch';
    const dir = await efivars(t, [lab.url]);
    const run = await beacon(['--server', gone, '--efivars', dir, '--no-mdns', 'boot']);
    assert.equal(run.code, 1);
    assert.equal(
      oneLine(run.stderr),
      `beacon: boot: no dispatch took it: ${gone} (--server): connection refused (4 tries); ${lab.url} (firmware): 417 no workload is booting on 127.0.0.1; mDNS: off`,
    );
    assert.equal(run.stdout, '');
  });

  test('no dispatch anywhere: exit 1 with one line that says where beacon looked', async () => {
    const run = await beacon([...only(), 'boot']);
    assert.equal(run.code, 1);
    assert.equal(oneLine(run.stderr), `beacon: boot: no dispatch found: no --server or DISPATCH_URL; firmware: no HTTP boot URI in ${empty}; mDNS: off`);
  });

  test('--timeout bounds everything: a dispatch that never answers ends the run on time with one line', async (t) => {
    const silent = await fake(t, [], { hang: true });
    const run = await beacon(['--server', silent.url, ...only(), '--timeout', '1500ms', 'boot']);
    assert.equal(run.code, 1);
    assert.ok(run.ms < 6_000, `took ${run.ms} ms`);
    assert.equal(oneLine(run.stderr), `beacon: boot: no dispatch took it: ${silent.url} (--server): no answer before the deadline; gave up after 1.5s (--timeout)`);
  });

  test('a bad command line exits 2 with one line and sends nothing', async () => {
    for (const args of [['--server', 'ftp://x/y', 'boot'], ['report'], ['--timeout', '5', 'boot'], []]) {
      const run = await beacon([...only(), ...args]);
      assert.equal(run.code, 2, args.join(' '));
      assert.match(oneLine(run.stderr), /^beacon: /);
    }
  });

  test('--version prints the package version', async () => {
    const run = await beacon(['--version']);
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.deepEqual([run.code, run.stdout], [0, `${pkg.version}\n`]);
  });
});

describe('beacon report', () => {
  test('a report from --body lands as a report file with its title, labels, assignees, milestone and body', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 1024 } });
    await download(lab);
    assert.equal((await beacon(['--server', lab.url, ...only(), 'boot'])).code, 0);
    const body = '# memtest\n\n2 errors on DIMM B2 ✓\n';
    const file = join(lab.dir, 'results.md');
    await writeFile(file, body);
    const run = await beacon(['--server', lab.url, ...only(), 'report', '--title', 'memtest: 2 errors', '--body', file, '--label', 'hw', '--label', 'dimm', '--assignee', 'alice', '--milestone', 'v2']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(oneLine(run.stdout), `beacon: report taken by ${lab.url} (--server): report stored`);
    const [stored, ...more] = await reports(lab);
    assert.equal(more.length, 0);
    assert.deepEqual(
      ['title', 'labels', 'assignees', 'milestone', 'workload', 'ip'].map((key) => JSON.parse(stored!.front[key]!) as unknown),
      ['memtest: 2 errors', ['hw', 'dimm'], ['alice'], 'v2', 'a.efi', '127.0.0.1'],
    );
    assert.equal(stored!.body, body);
  });

  test('without --body, the report body is read from stdin', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 1024 } });
    await download(lab);
    assert.equal((await beacon(['--server', lab.url, ...only(), 'boot'])).code, 0);
    const output = 'ok 1 - boots\nok 2 - network\n';
    const run = await beacon(['--server', lab.url, ...only(), 'report', '--title', 'smoke'], { stdin: output });
    assert.equal(run.code, 0, run.stderr);
    const [stored] = await reports(lab);
    assert.equal(stored!.body, output);
    assert.deepEqual([stored!.front.labels, stored!.front.assignees, stored!.front.milestone], ['[]', '[]', 'null']);
  });

  test('with stdin at its end at once (/dev/null) and no --body, the report is sent with no body field', async (t) => {
    const seen = await fake(t, [[200, 'report stored\n']]);
    const run = await beacon(['--server', seen.url, ...only(), 'report', '--title', 'bare', '--label', '']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(seen.requests.map((r) => [r.method, r.body]), [['PUT', '{"title":"bare"}']]);
  });

  test('a report dispatch refuses as too large exits 1 at once with dispatch\'s reason, and no other dispatch is asked', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 1024 }, maxReportBytes: 1024 });
    await download(lab);
    assert.equal((await beacon(['--server', lab.url, ...only(), 'boot'])).code, 0);
    const spare = await fake(t, [[200, 'report stored\n']]);
    const run = await beacon(['--server', lab.url, '--server', spare.url, ...only(), 'report', '--title', 'big'], { stdin: 'x'.repeat(5_000) });
    assert.equal(run.code, 1);
    assert.equal(oneLine(run.stderr), `beacon: report refused by ${lab.url} (--server): 413 report too large: the limit is 1024 bytes`);
    assert.equal(spare.requests.length, 0);
    assert.deepEqual(await reports(lab), []);
  });

  test('a 400 (a report dispatch cannot read) exits 1 with the reason', async (t) => {
    const picky = await fake(t, [[400, 'report needs a title\n']]);
    const run = await beacon(['--server', picky.url, ...only(), 'report', '--title', 't'], { stdin: 'body' });
    assert.equal(run.code, 1);
    assert.equal(oneLine(run.stderr), `beacon: report refused by ${picky.url} (--server): 400 report needs a title`);
  });

  test('a --body file that cannot be read is a usage error (exit 2), and nothing is sent', async (t) => {
    const seen = await fake(t, [[200, 'report stored\n']]);
    const run = await beacon(['--server', seen.url, ...only(), 'report', '--title', 't', '--body', join(empty, 'missing.txt')]);
    assert.equal(run.code, 2);
    assert.match(oneLine(run.stderr), /--body .*missing\.txt: cannot read it \(no such file\)/);
    assert.equal(seen.requests.length, 0);
  });

  test('a stdin that never ends is bounded by --timeout', async (t) => {
    const seen = await fake(t, [[200, 'report stored\n']]);
    const env: Record<string, string | undefined> = { ...process.env };
    delete env.DISPATCH_URL;
    // stdin is a pipe this test keeps open.
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--server', seen.url, ...only(), '--timeout', '1s', 'report', '--title', 't'], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.stdin.write('partial output');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 1);
    assert.equal(oneLine(stderr), 'beacon: report not sent: stdin did not end within 1s (--timeout)');
    assert.equal(seen.requests.length, 0);
  });
});

describe('beacon in process (runBeacon, the function main.ts calls)', () => {
  test('with no URL and no firmware URI, what mDNS finds is used: the browse gets 10 s and its URL takes the boot', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 1024 } });
    await download(lab);
    const out: string[] = [];
    const err: string[] = [];
    const browsed: number[] = [];
    const code = await runBeacon(['--efivars', empty, 'boot'], '0.0.0', {
      stdout: (line) => out.push(line),
      stderr: (line) => err.push(line),
      env: {},
      stdin: { isTTY: true, read: async () => Buffer.alloc(0) },
      loadBrowse: async () => async ({ timeoutMs }) => {
        browsed.push(timeoutMs);
        return [{ url: lab.url, host: '127.0.0.1', port: Number(new URL(lab.url).port) }];
      },
    });
    assert.equal(code, 0, err.join('\n'));
    assert.deepEqual(out, [`beacon: boot taken by ${lab.url} (mDNS): booting a.efi`]);
    assert.deepEqual(browsed, [10_000]);
  });

  test('an mDNS browser that cannot be loaded counts as finding nothing', async () => {
    const err: string[] = [];
    const code = await runBeacon(['--efivars', empty, '--timeout', '5s', 'boot'], '0.0.0', {
      stdout: () => undefined,
      stderr: (line) => err.push(line),
      env: {},
      stdin: { isTTY: true, read: async () => Buffer.alloc(0) },
      loadBrowse: async () => undefined,
    });
    assert.equal(code, 1);
    assert.deepEqual(err, [`beacon: boot: no dispatch found: no --server or DISPATCH_URL; firmware: no HTTP boot URI in ${empty}; mDNS: not available in this build`]);
  });
});

describe('beacon HTTP client', () => {
  test('a request with no answer ends at its own timeout, and failures have short reasons', async (t) => {
    const silent = await fake(t, [], { hang: true });
    const client = httpClient('beacon-test');
    t.after(() => client.close());
    const signal = new AbortController().signal;
    const started = Date.now();
    await assert.rejects(client.send({ method: 'POST', url: silent.url, timeoutMs: 300, signal }), { message: 'no answer in 0.3s' });
    assert.ok(Date.now() - started < 3_000);
    await assert.rejects(client.send({ method: 'POST', url: 'http://127.0.0.1:1/dispatch', timeoutMs: 300, signal }), { message: 'connection refused' });
  });

  test('PUT sends the JSON with its content type and a beacon user agent; the answer is status and text', async (t) => {
    const seen: http.IncomingHttpHeaders[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on('end', () => res.writeHead(200).end('report stored\n'));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const client = httpClient('beacon/1.2.3');
    t.after(() => client.close());
    const answer = await client.send({ method: 'PUT', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/dispatch`, body: '{"title":"t"}', contentType: 'application/json', timeoutMs: 2_000, signal: new AbortController().signal });
    assert.deepEqual(answer, { status: 200, text: 'report stored\n' });
    assert.deepEqual([seen[0]?.['content-type'], seen[0]?.['user-agent'], seen[0]?.['content-length']], ['application/json', 'beacon/1.2.3', '13']);
  });
});
