import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { type Answer, deliver, type DeliverDeps } from '../beacon/deliver.ts';
import { type BrowseDispatch, type Candidate, discover, type DiscoverDeps, type Notes } from '../beacon/discover.ts';
import { parseArgs, parseServerUrl, UsageError, InfoExit } from '../beacon/options.ts';
import { wireReport } from '../beacon/report.ts';
import { parseReport } from '../src/report/validate.ts';

// The pure parts of beacon: what it sends, how it reads its command line, and how it
// walks its candidates. The sockets are in beacon.test.ts.

const parse = (argv: string[], env: Record<string, string> = {}) => parseArgs(argv, '9.9.9', { out: () => undefined, env });

describe('beacon report: the JSON it sends', () => {
  test('empty fields are left out, as the reference beacon does, and dispatch reads what is left', () => {
    const bare = wireReport({ title: 'ok', body: '', labels: [], assignees: ['', ' '], milestone: '' });
    assert.equal(JSON.stringify(bare), '{"title":"ok"}');
    const full = wireReport({ title: 'memtest: 2 errors', body: 'dimm b2\n', labels: ['hw', '', 'dimm'], assignees: ['alice'], milestone: 'v2' });
    assert.deepEqual(full, { title: 'memtest: 2 errors', body: 'dimm b2\n', labels: ['hw', 'dimm'], assignees: ['alice'], milestone: 'v2' });
    for (const sent of [bare, full]) {
      const read = parseReport(JSON.stringify(sent));
      assert.ok(read.ok, JSON.stringify(read));
      assert.equal(read.value.title, sent.title);
      assert.equal(read.value.body, sent.body ?? '');
    }
  });
});

describe('beacon command line', () => {
  test('boot with defaults: no explicit URL, efivars in /sys, mDNS on, 60 s', () => {
    assert.deepEqual(parse(['boot']), { command: 'boot', explicit: [], timeoutMs: 60_000, verbose: false, efivars: '/sys/firmware/efi/efivars', mdns: true, report: undefined });
  });

  test('--server may be given several times, before or after the command, and is tried in that order', () => {
    const config = parse(['--server', 'http://10.0.0.1:8080/dispatch', 'boot', '-s', 'http://10.0.0.2:8080/x'], { DISPATCH_URL: 'http://10.0.0.9/dispatch' });
    assert.deepEqual(config.explicit, [
      { url: 'http://10.0.0.1:8080/dispatch', origin: '--server' },
      { url: 'http://10.0.0.2:8080/x', origin: '--server' },
    ]);
  });

  test('DISPATCH_URL is used when there is no --server', () => {
    assert.deepEqual(parse(['boot'], { DISPATCH_URL: ' http://10.0.0.9:8080/dispatch ' }).explicit, [{ url: 'http://10.0.0.9:8080/dispatch', origin: 'DISPATCH_URL' }]);
    assert.deepEqual(parse(['boot'], { DISPATCH_URL: '' }).explicit, []);
  });

  test('a URL with no path gets /dispatch; one ending in / keeps it', () => {
    assert.equal(parseServerUrl('http://10.0.0.1:8080'), 'http://10.0.0.1:8080/dispatch');
    assert.equal(parseServerUrl('https://lab.example'), 'https://lab.example/dispatch');
    assert.equal(parseServerUrl('http://10.0.0.1:8080/'), 'http://10.0.0.1:8080/');
    assert.equal(parseServerUrl('http://[fd00::1]:8080/boot'), 'http://[fd00::1]:8080/boot');
  });

  test('report: title, body file, repeated labels and assignees, milestone, timeout, verbose, efivars, no mDNS', () => {
    const config = parse(['--timeout', '90s', '-v', '--efivars', '/tmp/vars', '--no-mdns', 'report', '--title', 'T', '--body', 'out.md', '--label', 'a', '-l', 'b', '--assignee', 'x', '-a', 'y', '--milestone', 'm']);
    assert.deepEqual(config, {
      command: 'report',
      explicit: [],
      timeoutMs: 90_000,
      verbose: true,
      efivars: '/tmp/vars',
      mdns: false,
      report: { title: 'T', bodyFile: 'out.md', labels: ['a', 'b'], assignees: ['x', 'y'], milestone: 'm' },
    });
  });

  test('bad command lines are usage errors with a one-line reason', () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [[], {}, /beacon boot, or beacon report/],
      [['reboot'], {}, /unknown command/],
      [['report'], {}, /--title/],
      [['report', '--title', '  '], {}, /needs a title/],
      [['report', '--title', 'T', '--body', ''], {}, /--body is empty/],
      [['--server', 'tftp://10.0.0.1/x', 'boot'], {}, /http or https/],
      [['--server', 'nonsense', 'boot'], {}, /not a URL/],
      [['boot'], { DISPATCH_URL: 'nonsense' }, /^DISPATCH_URL: .*not a URL/],
      [['--timeout', '60', 'boot'], {}, /--timeout: .*not a duration/],
      [['--efivars', '', 'boot'], {}, /--efivars is empty/],
      [['boot', '--title', 'x'], {}, /unknown option/],
    ];
    for (const [argv, env, reason] of cases) {
      assert.throws(() => parse(argv, env), (err: Error) => err instanceof UsageError && reason.test(err.message) && !err.message.includes('\n'), argv.join(' '));
    }
  });

  test('--help and --version are printed, not errors', () => {
    let out = '';
    assert.throws(() => parseArgs(['--version'], '9.9.9', { out: (text) => (out += text), env: {} }), InfoExit);
    assert.equal(out, '9.9.9\n');
    out = '';
    assert.throws(() => parseArgs(['report', '--help'], '9.9.9', { out: (text) => (out += text), env: {} }), InfoExit);
    assert.match(out, /--title <title>/);
  });
});

const A: Candidate = { url: 'http://10.0.0.1:8080/dispatch', origin: '--server' };
const B: Candidate = { url: 'http://10.0.0.2:8080/dispatch', origin: 'firmware' };
const C: Candidate = { url: 'http://10.0.0.3:8080/dispatch', origin: 'mDNS' };

async function* list(...candidates: Candidate[]): AsyncGenerator<Candidate> {
  yield* candidates;
}

/** A send that answers from a script per URL: a status, or an Error for a transport failure. */
function scripted(script: Record<string, Array<number | Error>>) {
  const asked: string[] = [];
  const send = async (url: string): Promise<Answer> => {
    asked.push(url);
    const next = script[url]?.shift();
    if (next === undefined) throw new Error(`unexpected request to ${url}`);
    if (next instanceof Error) throw next;
    return { status: next, text: next === 417 ? 'no workload is booting on 10.0.0.5\n' : next === 413 ? 'report too large: the limit is 10 bytes\n' : `status ${next}\n` };
  };
  return { asked, send };
}

function deps(send: DeliverDeps['send'], overrides: Partial<DeliverDeps> = {}) {
  const slept: number[] = [];
  return {
    slept,
    deps: { send, retryDelaysMs: [500, 1_000, 2_000], sleep: async (ms: number) => void slept.push(ms), log: () => undefined, signal: new AbortController().signal, ...overrides } satisfies DeliverDeps,
  };
}

describe('beacon: offering a message to candidates', () => {
  test('417 means "not this dispatch": the next one is asked, and the first 200 wins', async () => {
    const { asked, send } = scripted({ [A.url]: [417], [B.url]: [200] });
    const result = await deliver(list(A, B, C), deps(send).deps);
    assert.equal(result.kind, 'accepted');
    assert.deepEqual(asked, [A.url, B.url]);
    assert.deepEqual(result.kind === 'accepted' && result.tried, [{ candidate: A, outcome: '417 no workload is booting on 10.0.0.5' }]);
  });

  test('5xx is retried on the same server after 0.5 s and 1 s, then taken', async () => {
    const { asked, send } = scripted({ [A.url]: [503, 502, 200] });
    const { slept, deps: d } = deps(send);
    const result = await deliver(list(A, B), d);
    assert.equal(result.kind, 'accepted');
    assert.deepEqual(asked, [A.url, A.url, A.url]);
    assert.deepEqual(slept, [500, 1_000]);
  });

  test('a server that keeps failing is tried 4 times in all (0.5 s, 1 s, 2 s apart), then the next one', async () => {
    const refused = new Error('connection refused');
    const { asked, send } = scripted({ [A.url]: [refused, 503, refused, refused], [B.url]: [500, 200] });
    const { slept, deps: d } = deps(send);
    const result = await deliver(list(A, B), d);
    assert.equal(result.kind, 'accepted');
    assert.deepEqual(asked, [A.url, A.url, A.url, A.url, B.url, B.url]);
    assert.deepEqual(slept, [500, 1_000, 2_000, 500]);
    assert.deepEqual(result.kind === 'accepted' && result.tried, [{ candidate: A, outcome: 'connection refused (4 tries)' }]);
  });

  test('400 and 413 stop everything at once: the report is bad, and another dispatch would say so too', async () => {
    for (const status of [400, 413]) {
      const { asked, send } = scripted({ [A.url]: [status], [B.url]: [200] });
      const result = await deliver(list(A, B), deps(send).deps);
      assert.equal(result.kind, 'refused');
      assert.equal(result.kind === 'refused' && result.status, status);
      assert.deepEqual(asked, [A.url]);
    }
  });

  test('any other status means "not a dispatch": no retry, next candidate', async () => {
    const { asked, send } = scripted({ [A.url]: [404], [B.url]: [405], [C.url]: [302] });
    const result = await deliver(list(A, B, C), deps(send).deps);
    assert.equal(result.kind, 'undelivered');
    assert.deepEqual(asked, [A.url, B.url, C.url]);
    assert.deepEqual(result.kind === 'undelivered' && result.tried.map((t) => t.outcome), ['404 status 404 (not a dispatch?)', '405 status 405 (not a dispatch?)', '302 status 302 (not a dispatch?)']);
  });

  test('the deadline ends a wait between tries, and says so', async () => {
    const deadline = new AbortController();
    const { send } = scripted({ [A.url]: [503, 200] });
    const result = await deliver(list(A, B), deps(send, {
      signal: deadline.signal,
      sleep: () => {
        deadline.abort();
        return new Promise(() => undefined);
      },
    }).deps);
    assert.deepEqual(result, { kind: 'undelivered', tried: [{ candidate: A, outcome: '503 status 503 (1 try, then the deadline)' }], timedOut: true });
  });

  test('no candidates at all: undelivered, nothing tried', async () => {
    assert.deepEqual(await deliver(list(), deps(scripted({}).send).deps), { kind: 'undelivered', tried: [], timedOut: false });
  });
});

function discoverDeps(overrides: Partial<DiscoverDeps> = {}) {
  const calls: string[] = [];
  const browse: BrowseDispatch = async (options) => {
    calls.push(`browse ${options.timeoutMs}`);
    return [{ url: C.url, host: '10.0.0.3', port: 8080 }, { url: A.url, host: '10.0.0.1', port: 8080 }];
  };
  const d: DiscoverDeps = {
    explicit: [A],
    efivars: '/efivars',
    firmware: async () => {
      calls.push('firmware');
      return [B.url, A.url];
    },
    mdns: async () => {
      calls.push('load mdns');
      return browse;
    },
    mdnsTimeoutMs: 10_000,
    remainingMs: () => 60_000,
    log: () => undefined,
    signal: new AbortController().signal,
    ...overrides,
  };
  return { calls, deps: d };
}

describe('beacon: where dispatch might be', () => {
  test('explicit URLs first, then the firmware URIs, then mDNS; each URL once', async () => {
    const { calls, deps: d } = discoverDeps();
    const notes: Notes = [];
    const found: Candidate[] = [];
    for await (const candidate of discover(d, notes)) found.push(candidate);
    assert.deepEqual(found, [A, B, C]);
    assert.deepEqual(calls, ['firmware', 'load mdns', 'browse 10000']);
    assert.deepEqual(notes, []);
  });

  test('a source is only asked once the candidates before it are used up: no mDNS wait when the firmware URI answers', async () => {
    const { calls, deps: d } = discoverDeps();
    const generator = discover(d, []);
    assert.deepEqual((await generator.next()).value, A);
    assert.deepEqual(calls, []);
    assert.deepEqual((await generator.next()).value, B);
    assert.deepEqual(calls, ['firmware']);
  });

  test('mDNS browses no longer than leaves 2 s to send to what it finds', async () => {
    const { calls, deps: d } = discoverDeps({ remainingMs: () => 5_000, explicit: [] });
    for await (const candidate of discover(d, [])) void candidate;
    assert.deepEqual(calls, ['firmware', 'load mdns', 'browse 3000']);
  });

  test('what each empty source said ends up in the notes', async () => {
    const notes: Notes = [];
    const { deps: d } = discoverDeps({ explicit: [], firmware: async () => [], mdns: async () => async () => [] });
    for await (const candidate of discover(d, notes)) void candidate;
    assert.deepEqual(notes, ['firmware: no HTTP boot URI in /efivars', 'mDNS: nothing found in 10s']);

    const off: Notes = [];
    for await (const candidate of discover(discoverDeps({ explicit: [], firmware: async () => [], mdns: undefined }).deps, off)) void candidate;
    assert.deepEqual(off, ['firmware: no HTTP boot URI in /efivars', 'mDNS: off']);

    const missing: Notes = [];
    for await (const candidate of discover(discoverDeps({ explicit: [], firmware: async () => [], mdns: async () => undefined }).deps, missing)) void candidate;
    assert.deepEqual(missing, ['firmware: no HTTP boot URI in /efivars', 'mDNS: not available in this build']);

    const failed: Notes = [];
    const broken: BrowseDispatch = async () => {
      throw new Error('EADDRINUSE');
    };
    for await (const candidate of discover(discoverDeps({ explicit: [], firmware: async () => [], mdns: async () => broken }).deps, failed)) void candidate;
    assert.deepEqual(failed, ['firmware: no HTTP boot URI in /efivars', 'mDNS: failed (EADDRINUSE)']);
  });
});
