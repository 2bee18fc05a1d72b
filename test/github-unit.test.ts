import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { ghHost, resolveToken, toGitHubError } from '../src/github/index.ts';
import type { JobView } from '../src/jobs/index.ts';
import { GITHUB_BODY_LIMIT, issueMarker, partMarker, planIssue, splitBody, type Filing } from '../src/report/index.ts';
import { parseArgs, UsageError } from '../src/cli/options.ts';

const job: JobView = {
  id: 3,
  name: 'memtest.efi',
  state: 'booting',
  ip: '10.1.2.3',
  size: 1,
  contentType: 'application/efi',
  attempts: 1,
  broken: 0,
  since: 0,
  reports: [],
  reason: null,
  bytes: 1,
  timeline: [{ at: Date.UTC(2026, 10, 23), what: 'assigned to 10.1.2.3 (HEAD)', ip: '10.1.2.3' }],
  dropped: 0,
};

function filing(body: string, title = 'memtest: 0 errors'): Filing {
  return { kind: 'report', report: { title, body, labels: [], assignees: [], milestone: null }, job, receivedAt: Date.UTC(2026, 10, 23, 1) };
}

describe('splitting long reports', () => {
  test('parts join back to the body exactly and each fits', () => {
    const body = Array.from({ length: 5000 }, (_, i) => `line ${i} ${'x'.repeat(i % 97)}`).join('\n');
    const parts = splitBody(body, 40_000, 60_000);
    assert.equal(parts.join(''), body);
    assert.ok(parts[0]!.length <= 40_000);
    for (const part of parts.slice(1)) assert.ok(part.length <= 60_000);
    assert.ok(parts.slice(0, -1).every((p) => p.endsWith('\n')), 'cut at line breaks when there are some');
  });

  test('a body without line breaks is cut hard, never inside a surrogate pair', () => {
    const body = '😀'.repeat(50_000);
    const parts = splitBody(body, 9_999, 9_999);
    assert.equal(parts.join(''), body);
    for (const part of parts) assert.doesNotMatch(part, /^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/);
  });

  test('a 200,000-character report becomes an issue and comments that all fit, in order', () => {
    const body = '¤'.repeat(200_000);
    const plan = planIssue(filing(body), 'abc', ['a note']);
    assert.ok(plan.body.length <= GITHUB_BODY_LIMIT);
    assert.ok(plan.comments.length >= 3);
    for (const c of plan.comments) assert.ok(c.length <= GITHUB_BODY_LIMIT);
    const carried = [plan.body, ...plan.comments].map((text) => text.match(/¤+/g)!.join('')).join('');
    assert.ok(carried === body, `nothing dropped, nothing repeated: ${carried.length} of ${body.length} characters carried`);
    assert.match(plan.body, /continues in \d+ comment\(s\) below/);
    assert.ok(plan.body.includes(issueMarker('abc')));
    plan.comments.forEach((c, i) => {
      assert.ok(c.includes(partMarker('abc', i + 2)));
      assert.match(c, new RegExp(`part ${i + 2} of ${plan.comments.length + 1}`));
    });
  });

  test('notes change the issue body, never how the comments are cut', () => {
    const body = 'z\n'.repeat(100_000);
    assert.deepEqual(planIssue(filing(body), 'id', []).comments, planIssue(filing(body), 'id', ['x'.repeat(900), 'y'.repeat(900)]).comments);
  });

  test('every issue ends with the footer and the marker; the title fits GitHub', () => {
    const plan = planIssue(filing('ok', 't'.repeat(400)), 'id', ['there is no milestone "v9"']);
    assert.equal(plan.title.length, 256);
    assert.match(plan.body, /^> \*\*dispatch:\*\* there is no milestone "v9"/);
    assert.match(plan.body, /workload `memtest.efi` · server `10.1.2.3`/);
    assert.match(plan.body, /assigned to 10.1.2.3 \(HEAD\)/);
    assert.ok(plan.body.endsWith(issueMarker('id')));
  });
});

describe('token chain', () => {
  const none = async () => undefined;
  test('--token, then GITHUB_TOKEN, then GH_TOKEN, then gh', async () => {
    const env = { GITHUB_TOKEN: 'env1', GH_TOKEN: 'env2' };
    assert.deepEqual(await resolveToken({ flag: 'flag', env, gh: none }, 'https://api.github.com'), { token: 'flag', from: '--token' });
    assert.deepEqual(await resolveToken({ env, gh: none }, 'https://api.github.com'), { token: 'env1', from: 'GITHUB_TOKEN' });
    assert.deepEqual(await resolveToken({ env: { GH_TOKEN: 'env2' }, gh: none }, 'https://api.github.com'), { token: 'env2', from: 'GH_TOKEN' });
    const asked: string[] = [];
    const gh = async (host: string) => {
      asked.push(host);
      return 'gh-token\n';
    };
    assert.deepEqual(await resolveToken({ env: { GITHUB_TOKEN: '  ' }, gh }, 'https://ghe.example.com/api/v3'), { token: 'gh-token', from: 'gh auth token (ghe.example.com)' });
    assert.deepEqual(asked, ['ghe.example.com']);
    assert.equal(await resolveToken({ env: {}, gh: none }, 'https://api.github.com'), undefined);
  });

  test('gh is asked for github.com when the API is api.github.com', () => {
    assert.equal(ghHost('https://api.github.com'), 'github.com');
    assert.equal(ghHost('http://127.0.0.1:8123/api/v3'), '127.0.0.1:8123');
  });
});

describe('GitHub errors', () => {
  const response = (status: number, headers: Record<string, string>, data: unknown) => ({ status, message: 'x', response: { headers, data } });
  test('rate limits say when to come back', () => {
    const primary = toGitHubError(response(403, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1010' }, { message: 'API rate limit exceeded' }), 'w', () => 1_000_000);
    assert.equal(primary.failure, 'rate-limit');
    assert.equal(primary.retryAfterMs, 11_000);
    const secondary = toGitHubError(response(429, { 'retry-after': '7' }, { message: 'You have exceeded a secondary rate limit' }), 'w');
    assert.equal(secondary.failure, 'rate-limit');
    assert.equal(secondary.retryAfterMs, 7_000);
  });

  test('each status maps to what dispatch does about it', () => {
    const failure = (status: number) => toGitHubError(response(status, {}, { message: 'm' }), 'w').failure;
    assert.deepEqual([401, 403, 404, 410, 422, 500, 502].map(failure), ['auth', 'forbidden', 'not-found', 'gone', 'validation', 'server', 'server']);
    const validation = toGitHubError(response(422, {}, { message: 'Validation Failed', errors: [{ field: 'assignees', code: 'invalid' }] }), 'w');
    assert.deepEqual(validation.validation, [{ field: 'assignees', code: 'invalid' }]);
  });

  test('no response at all is the network, with the reason', () => {
    const error = toGitHubError(Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } }), 'release t');
    assert.equal(error.failure, 'network');
    assert.match(error.message, /^release t: cannot reach GitHub \(ECONNREFUSED\)$/);
  });
});

describe('GitHub flags', () => {
  const io = (env: Record<string, string> = {}) => ({ out: () => undefined, env, home: '/home/lab' });
  test('a release is the source, reports go to its repository', () => {
    const config = parseArgs(['-o', 'acme', '-r', 'lab', '-t', 'v1', 'mem'], '0', io());
    assert.deepEqual(config.github, { owner: 'acme', repo: 'lab', tag: 'v1', apiUrl: 'https://api.github.com', token: undefined });
    assert.equal(config.dir, undefined);
    assert.deepEqual(config.filters, ['mem']);
    assert.equal(config.stateDir, '/home/lab/.local/state/dispatch');
  });

  test('flags beat the environment, which beats the defaults', () => {
    const env = { GITHUB_API_URL: 'https://ghe.example.com/api/v3/', XDG_STATE_HOME: '/var/state' };
    const fromEnv = parseArgs(['-o', 'a', '-r', 'b', '-t', 'c'], '0', io(env));
    assert.equal(fromEnv.github?.apiUrl, 'https://ghe.example.com/api/v3');
    assert.equal(fromEnv.stateDir, '/var/state/dispatch');
    const fromFlag = parseArgs(['-o', 'a', '-r', 'b', '-t', 'c', '--api-url', 'http://127.0.0.1:9/api/v3', '--state-dir', '/s'], '0', io(env));
    assert.equal(fromFlag.github?.apiUrl, 'http://127.0.0.1:9/api/v3');
    assert.equal(fromFlag.stateDir, '/s');
  });

  test('a directory can be served while reports go to a repository', () => {
    const config = parseArgs(['--dir', 'w', '-o', 'acme', '-r', 'lab'], '0', io());
    assert.equal(config.dir, 'w');
    assert.equal(config.github?.tag, undefined);
  });

  test('incomplete or conflicting sources are usage errors', () => {
    const usage = (args: string[], env: Record<string, string> = {}) => assert.throws(() => parseArgs(args, '0', io(env)), UsageError);
    usage(['-o', 'acme', '-t', 'v1']);
    usage(['-t', 'v1']);
    usage(['-o', 'a', '-r', 'b', '-t', 'c', '--dir', 'w']);
    usage(['-o', 'a', '-r', 'b']);
    usage(['-o', 'a', '-r', 'b', '-t', 'c', '--api-url', 'ftp://x']);
    usage(['-o', 'a', '-r', 'b', '-t', 'c'], { GITHUB_API_URL: 'not a url' });
    usage(['-o', 'a', '-r', 'b', '-t', 'c', '--api-url', 'https://user:secret@ghe/api/v3']);
  });
});
