import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import type { FakeGitHub, FakeGitHubOptions, FakeRelease } from './github/fake.ts';
import { startFakeGitHub } from './github/fake.ts';

// The fake GitHub checked against what GitHub's REST API does (FACTS §D), with
// plain fetch so the fake, not a client library, is under test.

const OWNER = 'ghp_owner'; // acme, admin on its repositories
const VISITOR = 'ghp_visitor'; // a user with no role on acme's repositories
const BOOT = Buffer.from('MZ'.padEnd(4096, '\u0001'));

interface Lab {
  readonly gh: FakeGitHub;
  readonly release: FakeRelease;
}

async function lab(t: TestContext, options: FakeGitHubOptions = {}): Promise<Lab> {
  const gh = await startFakeGitHub(options);
  t.after(async () => {
    await gh.close();
    assert.deepEqual(gh.errors, [], 'the fake itself broke');
  });
  gh.addRepo({ owner: 'acme', name: 'lab', collaborators: ['alice'], labels: [{ name: 'Regression', color: 'b60205' }] });
  gh.addRepo({ owner: 'acme', name: 'secret', private: true });
  gh.addToken({ token: OWNER, login: 'acme' });
  gh.addToken({ token: VISITOR, login: 'visitor' });
  const release = gh.addRelease('acme/lab', {
    tag: 'v1.0',
    assets: [
      { name: 'boot.efi', contentType: 'application/vnd.dispatch+efi', label: 'Boot image', bytes: BOOT },
      { name: 'old.img', contentType: 'application/vnd.dispatch+img', bytes: 'old', digest: null },
      { name: 'lying.iso', contentType: 'application/vnd.dispatch+iso', bytes: 'iso', digest: `sha256:${'0'.repeat(64)}` },
    ],
  });
  return { gh, release };
}

function call(gh: FakeGitHub, path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `token ${init.token}`);
  if (!headers.has('accept')) headers.set('accept', 'application/vnd.github+json');
  if (init.body !== undefined) headers.set('content-type', 'application/json');
  return fetch(`${gh.apiUrl}${path}`, { ...init, headers });
}

function post(gh: FakeGitHub, path: string, body: unknown, token = OWNER): Promise<Response> {
  return call(gh, path, { method: 'POST', body: JSON.stringify(body), token });
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

function assetOf(release: FakeRelease, name: string): NonNullable<FakeRelease['assets'][number]> {
  const asset = release.assets.find((a) => a.name === name);
  assert.ok(asset, `no asset ${name}`);
  return asset;
}

test('a release by tag lists its assets with the fields GitHub gives; a missing tag is 404', async (t) => {
  const { gh, release } = await lab(t);
  const res = await call(gh, '/repos/acme/lab/releases/tags/v1.0', { token: OWNER });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(res.headers.get('x-ratelimit-limit'), '5000');
  assert.equal(res.headers.get('x-ratelimit-remaining'), '4999');
  assert.equal(res.headers.get('x-ratelimit-used'), '1');
  assert.equal(res.headers.get('x-ratelimit-resource'), 'core');
  assert.ok(Number(res.headers.get('x-ratelimit-reset')) > Date.now() / 1000);
  assert.match(res.headers.get('x-github-request-id') ?? '', /^[0-9A-F]+(:[0-9A-F]+){4}$/);
  const data = (await res.json()) as { id: number; tag_name: string; assets: Record<string, unknown>[] };
  assert.equal(data.id, release.id);
  assert.equal(data.tag_name, 'v1.0');
  const [boot, old, lying] = data.assets;
  const bootId = assetOf(release, 'boot.efi').id;
  assert.deepEqual(
    { ...boot, uploader: undefined },
    {
      url: `${gh.apiUrl}/repos/acme/lab/releases/assets/${bootId}`,
      id: bootId,
      node_id: boot?.node_id,
      name: 'boot.efi',
      label: 'Boot image',
      uploader: undefined,
      content_type: 'application/vnd.dispatch+efi',
      state: 'uploaded',
      size: BOOT.length,
      digest: `sha256:${sha256(BOOT)}`,
      download_count: 0,
      created_at: boot?.created_at,
      updated_at: boot?.updated_at,
      browser_download_url: `${gh.webUrl}/acme/lab/releases/download/v1.0/boot.efi`,
    },
  );
  assert.match(String(boot?.updated_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal((boot?.uploader as { login: string }).login, 'acme');
  assert.equal(old?.digest, null);
  assert.equal(old?.label, null);
  assert.equal(lying?.digest, `sha256:${'0'.repeat(64)}`);

  const missing = await call(gh, '/repos/acme/lab/releases/tags/v9', { token: OWNER });
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.deepEqual(await missing.json(), { message: 'Not Found', documentation_url: 'https://docs.github.com/rest/releases/releases#get-a-release-by-tag-name', status: '404' });
});

test('a private repository is hidden (404) from requests without a token that can see it; a bad token is 401', async (t) => {
  const { gh } = await lab(t);
  gh.addRelease('acme/secret', { tag: 'v1', assets: [{ name: 'x.efi', bytes: 'x' }] });
  for (const token of [undefined, VISITOR]) {
    const repo = await call(gh, '/repos/acme/secret', token ? { token } : {});
    assert.equal(repo.status, 404, `repo with ${token}`);
    assert.equal(((await repo.json()) as { message: string }).message, 'Not Found');
    assert.equal((await call(gh, '/repos/acme/secret/releases/tags/v1', token ? { token } : {})).status, 404);
  }
  const seen = await call(gh, '/repos/acme/secret', { token: OWNER });
  assert.equal(seen.status, 200);
  const repo = (await seen.json()) as { private: boolean; full_name: string; permissions: Record<string, boolean> };
  assert.equal(repo.private, true);
  assert.equal(repo.full_name, 'acme/secret');
  assert.deepEqual(repo.permissions, { admin: true, maintain: true, push: true, triage: true, pull: true });
  assert.equal((await call(gh, '/repos/acme/secret/releases/tags/v1', { headers: { authorization: `Bearer ${OWNER}` } })).status, 200);

  const visitorView = (await (await call(gh, '/repos/acme/lab', { token: VISITOR })).json()) as { permissions: Record<string, boolean> };
  assert.deepEqual(visitorView.permissions, { admin: false, maintain: false, push: false, triage: false, pull: true });
  const anonymous = await call(gh, '/repos/acme/lab');
  assert.equal(anonymous.status, 200);
  assert.equal(anonymous.headers.get('x-ratelimit-limit'), '60');
  assert.equal('permissions' in ((await anonymous.json()) as object), false);

  for (const path of ['/repos/acme/lab', '/user', '/repos/acme/lab/releases/tags/v1.0']) {
    const bad = await call(gh, path, { token: 'ghp_revoked' });
    assert.equal(bad.status, 401, path);
    assert.deepEqual(await bad.json(), { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' });
  }
  const me = await call(gh, '/user', { token: OWNER });
  assert.equal(me.status, 200);
  assert.equal(((await me.json()) as { login: string }).login, 'acme');
});

test('an asset download is a 302 to a signed URL on another origin, which refuses an Authorization header', async (t) => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const { gh, release } = await lab(t, { now: () => now });
  const boot = assetOf(release, 'boot.efi');
  const assetUrl = `/repos/acme/lab/releases/assets/${boot.id}`;

  const meta = await call(gh, assetUrl, { token: OWNER });
  assert.equal(meta.status, 200);
  assert.equal(((await meta.json()) as { digest: string }).digest, `sha256:${sha256(BOOT)}`);

  const redirect = await call(gh, assetUrl, { token: OWNER, headers: { accept: 'application/octet-stream' }, redirect: 'manual' });
  assert.equal(redirect.status, 302);
  assert.ok(redirect.headers.get('x-ratelimit-remaining'));
  const location = new URL(redirect.headers.get('location') ?? '');
  assert.equal(location.origin, gh.bytesUrl);
  assert.notEqual(location.origin, new URL(gh.apiUrl).origin);
  assert.ok(location.searchParams.get('sig'));
  assert.equal(boot.downloadCount, 1);

  const withToken = await fetch(location, { headers: { authorization: `token ${OWNER}` } });
  assert.equal(withToken.status, 400);
  assert.equal(withToken.headers.get('content-type'), 'application/xml');
  assert.match(await withToken.text(), /<Code>InvalidAuthenticationInfo<\/Code>/);
  const leaked = gh.requestsTo('bytes').at(-1);
  assert.equal(leaked?.authorization, true);
  assert.equal(leaked?.status, 400);
  assert.equal(leaked?.port, Number(location.port));

  const plain = await fetch(location);
  assert.equal(plain.status, 200);
  assert.equal(plain.headers.get('content-type'), 'application/octet-stream');
  assert.equal(plain.headers.get('content-length'), String(BOOT.length));
  const bytes = new Uint8Array(await plain.arrayBuffer());
  assert.equal(`sha256:${sha256(bytes)}`, boot.digest);

  const part = await fetch(location, { headers: { range: 'bytes=2-5' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 2-5/${BOOT.length}`);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), BOOT.subarray(2, 6));
  assert.equal((await fetch(location, { headers: { range: `bytes=${BOOT.length}-` } })).status, 416);

  const forged = new URL(location);
  forged.searchParams.set('sig', 'AAAA');
  assert.equal((await fetch(forged)).status, 403);
  const otherAsset = new URL(location);
  otherAsset.pathname = otherAsset.pathname.replace(/\d+$/, String(assetOf(release, 'old.img').id));
  assert.equal((await fetch(otherAsset)).status, 403, 'a signature is for one asset');
  assert.equal((await fetch(location, { method: 'HEAD' })).status, 403, 'the signature grants GET only');

  now += 301_000;
  const expired = await fetch(location);
  assert.equal(expired.status, 403);
  assert.match(await expired.text(), /<Code>AuthenticationFailed<\/Code>.*expiry/s);

  const hidden = await call(gh, assetUrl, { headers: { accept: 'application/octet-stream' }, redirect: 'manual', token: 'ghp_revoked' });
  assert.equal(hidden.status, 401);
  assert.equal((await call(gh, '/repos/acme/lab/releases/assets/999', { token: OWNER })).status, 404);
});

test("fetch following the redirect drops Authorization at the other origin, so the token never reaches the bytes host", async (t) => {
  const { gh, release } = await lab(t);
  gh.repo('acme/lab').private = true;
  const boot = assetOf(release, 'boot.efi');
  const res = await fetch(`${gh.apiUrl}/repos/acme/lab/releases/assets/${boot.id}`, {
    headers: { authorization: `Bearer ${OWNER}`, accept: 'application/octet-stream' },
    redirect: 'follow',
  });
  assert.equal(res.status, 200);
  assert.equal(res.redirected, true);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), BOOT);
  const api = gh.requestsTo('api');
  const bytes = gh.requestsTo('bytes');
  assert.equal(api.length, 1);
  assert.equal(api[0]?.authorization, true);
  assert.equal(api[0]?.status, 302);
  assert.equal(bytes.length, 1);
  assert.equal(bytes[0]?.authorization, false);
  assert.equal(bytes[0]?.headers.authorization, undefined);
  assert.equal(bytes[0]?.status, 200);
});

test('deliveries: a direct 200, a chain of redirects, a slow transfer and a broken one', async (t) => {
  const { gh, release } = await lab(t);
  const big = Buffer.alloc(20_000, 7);
  const asset = gh.addAsset(release, { name: 'big.img', bytes: big });
  const url = `/repos/acme/lab/releases/assets/${asset.id}`;
  const octet = { token: OWNER, headers: { accept: 'application/octet-stream' } };

  asset.delivery = { mode: 'direct' };
  const direct = await call(gh, url, { ...octet, redirect: 'manual' });
  assert.equal(direct.status, 200);
  assert.equal(direct.headers.get('content-type'), 'application/octet-stream');
  assert.ok(direct.headers.get('x-github-request-id'));
  assert.deepEqual(Buffer.from(await direct.arrayBuffer()), big);

  asset.delivery = { extraRedirects: 3 };
  let next = `${gh.apiUrl}${url}`;
  let hops = 0;
  for (;;) {
    const res = await fetch(next, { headers: hops === 0 ? { authorization: `token ${OWNER}`, accept: 'application/octet-stream' } : {}, redirect: 'manual' });
    if (res.status !== 302) {
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      break;
    }
    next = new URL(res.headers.get('location') ?? '', next).toString();
    hops += 1;
  }
  assert.equal(hops, 4, 'the API redirect plus three on the bytes host');

  asset.delivery = { bytesPerTick: 2_000, tickMs: 15 };
  const started = Date.now();
  const slow = await call(gh, url, octet);
  const reader = slow.body?.getReader();
  assert.ok(reader);
  const first = await reader.read();
  assert.ok(first.value && first.value.length < big.length);
  assert.equal(gh.requestsTo('bytes').at(-1)?.outcome, 'pending', 'still sending');
  assert.equal(gh.requestsTo('bytes').at(-1)?.status, 200);
  let received = first.value.length;
  for (let r = await reader.read(); !r.done; r = await reader.read()) received += r.value.length;
  assert.equal(received, big.length);
  assert.ok(Date.now() - started >= 9 * 15, 'ten slices, a tick apart');
  assert.equal(gh.requestsTo('bytes').at(-1)?.outcome, 'answered');

  asset.delivery = { cutAfter: 5_000 };
  const cut = await call(gh, url, octet);
  assert.equal(cut.status, 200);
  assert.equal(cut.headers.get('content-length'), String(big.length));
  await assert.rejects(cut.arrayBuffer());
  assert.equal(gh.requestsTo('bytes').at(-1)?.outcome, 'cut');
});

test('a big asset can come from a file: hashed once when added, streamed with ranges when served', async (t) => {
  const { gh, release } = await lab(t);
  const dir = await mkdtemp(join(tmpdir(), 'fake-github-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const content = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
  await writeFile(join(dir, 'disk.img'), content);
  const asset = gh.addAsset(release, { name: 'disk.img', contentType: 'application/vnd.dispatch+img', path: join(dir, 'disk.img') });
  assert.equal(asset.size, content.length);
  assert.equal(asset.digest, `sha256:${sha256(content)}`);
  const url = `${gh.apiUrl}/repos/acme/lab/releases/assets/${asset.id}`;
  const whole = await fetch(url, { headers: { accept: 'application/octet-stream' } });
  assert.equal(whole.status, 200);
  assert.equal(sha256(new Uint8Array(await whole.arrayBuffer())), sha256(content));
  const tail = await fetch(url, { headers: { accept: 'application/octet-stream', range: 'bytes=-1000' } });
  assert.equal(tail.status, 206);
  assert.equal(tail.headers.get('content-range'), `bytes ${content.length - 1000}-${content.length - 1}/${content.length}`);
  assert.deepEqual(Buffer.from(await tail.arrayBuffer()), content.subarray(content.length - 1000));
});

test('milestones page through Link headers with absolute /repositories/{id} URLs', async (t) => {
  const { gh } = await lab(t);
  const repo = gh.repo('acme/lab');
  for (let n = 1; n <= 7; n += 1) gh.addMilestone(repo, { title: `M${n}`, state: n % 3 === 0 ? 'closed' : 'open' });

  const titles: string[] = [];
  const links: string[] = [];
  let next: string | undefined = `${gh.apiUrl}/repos/acme/lab/milestones?state=all&per_page=3`;
  while (next) {
    const res: Response = await fetch(next, { headers: { authorization: `token ${OWNER}` } });
    assert.equal(res.status, 200);
    const link = res.headers.get('link') ?? '';
    links.push(link);
    titles.push(...((await res.json()) as { title: string; number: number }[]).map((m) => m.title));
    next = /<([^<>]+)>;\s*rel="next"/.exec(link)?.[1];
  }
  assert.deepEqual(titles, ['M1', 'M2', 'M3', 'M4', 'M5', 'M6', 'M7']);
  assert.equal(links.length, 3);
  const base = `${gh.apiUrl}/repositories/${repo.id}/milestones?state=all&per_page=3`;
  assert.equal(links[0], `<${base}&page=2>; rel="next", <${base}&page=3>; rel="last"`);
  assert.equal(links[1], `<${base}&page=1>; rel="prev", <${base}&page=3>; rel="next", <${base}&page=3>; rel="last", <${base}&page=1>; rel="first"`);
  assert.equal(links[2], `<${base}&page=2>; rel="prev", <${base}&page=1>; rel="first"`);

  const open = (await (await call(gh, '/repos/acme/lab/milestones', { token: OWNER })).json()) as { title: string; state: string }[];
  assert.deepEqual(open.map((m) => m.title), ['M1', 'M2', 'M4', 'M5', 'M7'], 'state defaults to open');
  const capped = await call(gh, '/repos/acme/lab/milestones?state=all&per_page=500', { token: OWNER });
  assert.equal(capped.headers.get('link'), null, 'per_page is capped at 100: one page');
  const defaults = Array.from({ length: 40 }, (_, i) => gh.addMilestone(repo, { title: `N${i}` }));
  assert.equal(defaults.length, 40);
  const first = await call(gh, '/repos/acme/lab/milestones?state=all', { token: OWNER });
  assert.equal(((await first.json()) as unknown[]).length, 30, 'per_page defaults to 30');
});

test('creating an issue answers 201 with the issue; unknown labels are created, known ones matched case-insensitively', async (t) => {
  const { gh } = await lab(t);
  const milestone = gh.addMilestone('acme/lab', { title: 'Nightly' });
  const res = await post(gh, '/repos/acme/lab/issues', { title: 'boot.efi passed on 10.0.0.5', body: 'all good', labels: ['regression', 'server:10.0.0.5'], assignees: ['alice'], milestone: milestone.number });
  assert.equal(res.status, 201);
  const issue = (await res.json()) as Record<string, unknown> & { labels: { name: string; color: string }[]; assignees: { login: string }[]; milestone: { number: number; title: string }; user: { login: string } };
  assert.equal(issue.number, 1);
  assert.equal(issue.title, 'boot.efi passed on 10.0.0.5');
  assert.equal(issue.body, 'all good');
  assert.equal(issue.state, 'open');
  assert.equal(issue.url, `${gh.apiUrl}/repos/acme/lab/issues/1`);
  assert.equal(issue.html_url, `${gh.webUrl}/acme/lab/issues/1`);
  assert.equal(res.headers.get('location'), issue.url);
  assert.equal(issue.user.login, 'acme');
  assert.equal(issue.author_association, 'OWNER');
  assert.deepEqual(issue.labels.map((l) => [l.name, l.color]), [['Regression', 'b60205'], ['server:10.0.0.5', 'ededed']]);
  assert.deepEqual(issue.assignees.map((a) => a.login), ['alice']);
  assert.equal(issue.milestone.title, 'Nightly');
  assert.match(String(issue.created_at), /Z$/);
  assert.ok(gh.repo('acme/lab').labels.has('server:10.0.0.5'));

  const stored = gh.issues('acme/lab');
  assert.equal(stored.length, 1);
  assert.deepEqual(
    { labels: stored[0]?.labels, assignees: stored[0]?.assignees, milestone: stored[0]?.milestone, user: stored[0]?.user },
    { labels: ['Regression', 'server:10.0.0.5'], assignees: ['alice'], milestone: milestone.number, user: 'acme' },
  );
  const again = await call(gh, '/repos/acme/lab/issues/1', { token: OWNER });
  assert.equal(((await again.json()) as { title: string }).title, 'boot.efi passed on 10.0.0.5');
  assert.equal((await call(gh, '/repos/acme/lab/issues/2', { token: OWNER })).status, 404);
});

test('validation failures answer 422 with GitHub bodies and create nothing', async (t) => {
  const { gh } = await lab(t);
  gh.addMilestone('acme/lab', { title: 'Nightly' });
  const doc = 'https://docs.github.com/rest/issues/issues#create-an-issue';

  const assignee = await post(gh, '/repos/acme/lab/issues', { title: 't', labels: ['new-label'], assignees: ['alice', 'mallory'] });
  assert.equal(assignee.status, 422);
  assert.deepEqual(await assignee.json(), { message: 'Validation Failed', errors: [{ value: 'mallory', resource: 'Issue', field: 'assignees', code: 'invalid' }], documentation_url: doc, status: '422' });
  assert.equal(gh.issues('acme/lab').length, 0);
  assert.equal(gh.repo('acme/lab').labels.has('new-label'), false, 'a refused issue creates no labels');

  for (const milestone of ['Nightly', 99, 1.5]) {
    const res = await post(gh, '/repos/acme/lab/issues', { title: 't', milestone });
    assert.equal(res.status, 422, `milestone ${milestone}`);
    assert.deepEqual(((await res.json()) as { errors: unknown[] }).errors, [{ value: milestone, resource: 'Issue', field: 'milestone', code: 'invalid' }]);
  }

  const long = await post(gh, '/repos/acme/lab/issues', { title: 't', body: 'x'.repeat(65_537) });
  assert.equal(long.status, 422);
  assert.deepEqual(((await long.json()) as { errors: unknown[] }).errors, [{ resource: 'Issue', code: 'custom', field: 'body', message: 'body is too long (maximum is 65536 characters)' }]);
  const untitled = await post(gh, '/repos/acme/lab/issues', { body: 'no title' });
  assert.equal(untitled.status, 422);
  assert.equal(((await untitled.json()) as { message: string }).message, 'Invalid request.\n\n"title" wasn\'t supplied.');
  assert.equal(gh.issues('acme/lab').length, 0);

  const fits = await post(gh, '/repos/acme/lab/issues', { title: 't', body: 'é'.repeat(65_536) });
  assert.equal(fits.status, 201, 'the limit counts characters');
  const comment = await post(gh, '/repos/acme/lab/issues/1/comments', { body: 'y'.repeat(65_537) });
  assert.equal(comment.status, 422);
  assert.equal(((await comment.json()) as { errors: { field: string; resource: string }[] }).errors[0]?.resource, 'IssueComment');
  assert.equal(gh.comments('acme/lab', 1).length, 0);
});

test('without push access labels, assignees and milestone are dropped silently; disabled issues are 410; writes need a token', async (t) => {
  const { gh } = await lab(t);
  gh.addMilestone('acme/lab', { title: 'Nightly' });
  const res = await post(gh, '/repos/acme/lab/issues', { title: 'from a visitor', labels: ['fresh'], assignees: ['alice', 'mallory'], milestone: 1 }, VISITOR);
  assert.equal(res.status, 201);
  const issue = (await res.json()) as { labels: unknown[]; assignees: unknown[]; milestone: unknown; user: { login: string }; author_association: string };
  assert.deepEqual([issue.labels, issue.assignees, issue.milestone], [[], [], null]);
  assert.equal(issue.user.login, 'visitor');
  assert.equal(issue.author_association, 'NONE');
  assert.equal(gh.repo('acme/lab').labels.has('fresh'), false);

  const anonymous = await call(gh, '/repos/acme/lab/issues', { method: 'POST', body: JSON.stringify({ title: 'x' }) });
  assert.equal(anonymous.status, 401);
  assert.equal(((await anonymous.json()) as { message: string }).message, 'Requires authentication');
  gh.addToken({ token: 'ghp_readonly', login: 'acme', issues: 'read' });
  const readOnly = await post(gh, '/repos/acme/lab/issues', { title: 'x' }, 'ghp_readonly');
  assert.equal(readOnly.status, 403);
  assert.equal(((await readOnly.json()) as { message: string }).message, 'Resource not accessible by personal access token');

  gh.repo('acme/lab').hasIssues = false;
  const gone = await post(gh, '/repos/acme/lab/issues', { title: 'x' });
  assert.equal(gone.status, 410);
  assert.deepEqual(await gone.json(), { message: 'Issues are disabled for this repo', documentation_url: 'https://docs.github.com/v3/issues/', status: '410' });
  assert.equal(gh.issues('acme/lab').length, 1);
});

test('listing issues filters by creator and since, sorts, pages, and includes pull requests; comments keep their order', async (t) => {
  let now = Date.parse('2026-03-01T12:00:00Z');
  const { gh } = await lab(t, { now: () => now });
  gh.addIssue('acme/lab', { title: 'old', user: 'acme', createdAt: now - 86_400_000 });
  gh.addIssue('acme/lab', { title: 'someone else', user: 'visitor' });
  gh.addIssue('acme/lab', { title: 'a pull request', user: 'acme', pullRequest: true });
  gh.addIssue('acme/lab', { title: 'closed', user: 'acme', state: 'closed' });
  now += 60_000;
  for (const n of [1, 2, 3]) assert.equal((await post(gh, '/repos/acme/lab/issues', { title: `report ${n}`, body: `<!-- dispatch:${n} -->` })).status, 201);

  const since = new Date(now - 3_600_000).toISOString();
  const res = await call(gh, `/repos/acme/lab/issues?state=all&creator=acme&since=${encodeURIComponent(since)}&sort=created&direction=desc&per_page=2`, { token: OWNER });
  assert.equal(res.status, 200);
  const page1 = (await res.json()) as { title: string; pull_request?: unknown }[];
  assert.deepEqual(page1.map((i) => i.title), ['report 3', 'report 2']);
  const next = /<([^<>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  assert.ok(next);
  assert.ok(next.includes(`/repositories/${gh.repo('acme/lab').id}/issues?`));
  const page2 = (await (await fetch(next, { headers: { authorization: `token ${OWNER}` } })).json()) as { title: string; pull_request?: unknown }[];
  assert.deepEqual(page2.map((i) => i.title), ['report 1', 'closed']);
  const third = new URL(next);
  third.searchParams.set('page', '3');
  const page3 = (await (await fetch(third, { headers: { authorization: `token ${OWNER}` } })).json()) as { title: string; pull_request?: unknown }[];
  assert.deepEqual(page3.map((i) => i.title), ['a pull request']);
  assert.ok(page3[0]?.pull_request, 'pull requests carry a pull_request key');

  const openOnly = (await (await call(gh, '/repos/acme/lab/issues', { token: OWNER })).json()) as { title: string }[];
  assert.equal(openOnly.some((i) => i.title === 'closed'), false, 'state defaults to open');
  assert.equal((await call(gh, '/repos/acme/lab/issues?since=yesterday', { token: OWNER })).status, 422);

  for (const part of ['part 2', 'part 3', 'part 4']) assert.equal((await post(gh, '/repos/acme/lab/issues/5/comments', { body: part })).status, 201);
  assert.deepEqual(gh.comments('acme/lab', 5).map((c) => c.body), ['part 2', 'part 3', 'part 4']);
  const comments = await call(gh, '/repos/acme/lab/issues/5/comments?per_page=2', { token: OWNER });
  assert.deepEqual(((await comments.json()) as { body: string; user: { login: string } }[]).map((c) => [c.body, c.user.login]), [['part 2', 'acme'], ['part 3', 'acme']]);
  assert.match(comments.headers.get('link') ?? '', /rel="next"/);
  assert.equal((await post(gh, '/repos/acme/lab/issues/99/comments', { body: 'x' })).status, 404);
});

test('primary and secondary rate limits answer with the headers clients act on', async (t) => {
  const { gh } = await lab(t);
  const primary = gh.rateLimitNext({ path: '/repos/*/*/releases/tags/*', resetIn: 30 });
  const limited = await call(gh, '/repos/acme/lab/releases/tags/v1.0', { token: OWNER });
  assert.equal(limited.status, 403);
  assert.equal(limited.headers.get('x-ratelimit-remaining'), '0');
  const reset = Number(limited.headers.get('x-ratelimit-reset'));
  assert.ok(Math.abs(reset - (Date.now() / 1000 + 30)) <= 2, `reset ${reset}`);
  const body = (await limited.json()) as { message: string; documentation_url: string };
  assert.match(body.message, /^API rate limit exceeded for user ID \d+\./);
  assert.equal(primary.hits, 1);
  const after = await call(gh, '/repos/acme/lab/releases/tags/v1.0', { token: OWNER });
  assert.equal(after.status, 200, 'only the next matching request');
  assert.notEqual(after.headers.get('x-ratelimit-remaining'), '0');

  gh.rateLimitNext({ status: 429, method: 'POST' });
  assert.equal((await call(gh, '/repos/acme/lab', { token: OWNER })).status, 200, 'a GET does not match a POST rule');
  const tooMany = await post(gh, '/repos/acme/lab/issues', { title: 'x' });
  assert.equal(tooMany.status, 429);
  assert.equal(tooMany.headers.get('x-ratelimit-remaining'), '0');

  gh.secondaryRateLimitNext({ method: 'POST', path: '/repos/acme/lab/issues', retryAfter: 2 });
  const secondary = await post(gh, '/repos/acme/lab/issues', { title: 'x' });
  assert.equal(secondary.status, 403);
  assert.equal(secondary.headers.get('retry-after'), '2');
  assert.notEqual(secondary.headers.get('x-ratelimit-remaining'), '0');
  assert.match(((await secondary.json()) as { message: string }).message, /^You have exceeded a secondary rate limit/);
  gh.secondaryRateLimitNext({ retryAfter: null });
  const noRetryAfter = await post(gh, '/repos/acme/lab/issues', { title: 'x' });
  assert.equal(noRetryAfter.status, 403);
  assert.equal(noRetryAfter.headers.get('retry-after'), null);
  assert.equal(gh.issues('acme/lab').length, 0);

  const small = await startFakeGitHub({ rateLimit: { limit: 2 } });
  t.after(() => small.close());
  small.addRepo({ owner: 'acme', name: 'lab' });
  small.addToken({ token: OWNER, login: 'acme' });
  const remaining = [];
  for (let i = 0; i < 3; i += 1) {
    const r = await call(small, '/repos/acme/lab', { token: OWNER });
    remaining.push([r.status, r.headers.get('x-ratelimit-remaining')]);
  }
  assert.deepEqual(remaining, [[200, '1'], [200, '0'], [403, '0']], 'the budget runs out on its own too');
});

test('server errors can be injected for the next N matching requests', async (t) => {
  const { gh } = await lab(t);
  const fault = gh.failNext({ method: 'POST', path: '/repos/acme/lab/issues', status: 502, times: 2 });
  for (let i = 0; i < 2; i += 1) {
    const res = await post(gh, '/repos/acme/lab/issues', { title: 'x' });
    assert.equal(res.status, 502);
    assert.ok(res.headers.get('x-ratelimit-remaining'));
    assert.equal(((await res.json()) as { message: string }).message, 'Server Error');
  }
  assert.equal(fault.remaining, 0);
  assert.equal(gh.issues('acme/lab').length, 0);
  assert.equal((await post(gh, '/repos/acme/lab/issues', { title: 'x' })).status, 201);

  gh.failNext({ server: 'bytes', status: 503 });
  const boot = gh.repo('acme/lab').releases[0]?.assets[0];
  assert.ok(boot);
  const res = await call(gh, `/repos/acme/lab/releases/assets/${boot.id}`, { token: OWNER, headers: { accept: 'application/octet-stream' } });
  assert.equal(res.status, 503);
  assert.match(await res.text(), /<Code>ServerBusy<\/Code>/);
});

test('an issue POST can succeed at GitHub and still lose its answer', async (t) => {
  const { gh } = await lab(t);
  const drop = gh.dropNext({ method: 'POST', path: '/repos/acme/lab/issues' });
  await assert.rejects(post(gh, '/repos/acme/lab/issues', { title: 'report', body: '<!-- dispatch:abc -->' }), TypeError);
  assert.equal(drop.hits, 1);
  const entry = gh.requestsTo('api').at(-1);
  assert.equal(entry?.outcome, 'dropped');
  assert.equal(entry?.status, null);
  assert.equal(gh.issues('acme/lab').length, 1, 'the issue exists although the client saw a network error');
  const found = (await (await call(gh, '/repos/acme/lab/issues?state=all&creator=acme', { token: OWNER })).json()) as { body: string }[];
  assert.ok(found.some((i) => i.body.includes('dispatch:abc')));

  gh.dropNext({ method: 'POST', when: 'before' });
  await assert.rejects(post(gh, '/repos/acme/lab/issues', { title: 'lost' }), TypeError);
  assert.equal(gh.issues('acme/lab').length, 1, 'dropped before acting: nothing filed');
});

test('a held request waits for the test, before or after GitHub acts', async (t) => {
  const { gh } = await lab(t);
  const hold = gh.holdNext({ method: 'POST', path: '/repos/acme/lab/issues', when: 'after' });
  let answered = false;
  const pending = post(gh, '/repos/acme/lab/issues', { title: 'held' }).then((r) => {
    answered = true;
    return r;
  });
  const seen = await hold.reached;
  assert.equal(seen.method, 'POST');
  assert.equal(gh.issues('acme/lab').length, 1, 'acted on');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(answered, false, 'but not answered');
  hold.release();
  assert.equal((await pending).status, 201);

  const before = gh.holdNext({ path: '/repos/acme/lab/issues' });
  const held = post(gh, '/repos/acme/lab/issues', { title: 'second' });
  await before.reached;
  assert.equal(gh.issues('acme/lab').length, 1, 'not yet acted on');
  before.release();
  assert.equal((await held).status, 201);
  assert.equal(gh.issues('acme/lab').length, 2);
});

test('with a GHES prefix the API lives under /api/v3 and links keep the prefix', async (t) => {
  const { gh } = await lab(t, { prefix: '/api/v3' });
  assert.match(gh.apiUrl, /^http:\/\/127\.0\.0\.1:\d+\/api\/v3$/);
  for (let n = 1; n <= 3; n += 1) gh.addMilestone('acme/lab', { title: `M${n}` });
  const res = await call(gh, '/repos/acme/lab/milestones?per_page=1', { token: OWNER });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('link') ?? '', new RegExp(`<${gh.apiUrl}/repositories/\\d+/milestones\\?per_page=1&page=2>; rel="next"`));
  const next = /<([^<>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1] ?? '';
  assert.deepEqual(((await (await fetch(next, { headers: { authorization: `token ${OWNER}` } })).json()) as { title: string }[]).map((m) => m.title), ['M2']);
  const outside = await fetch(`${gh.webUrl}/repos/acme/lab`, { headers: { authorization: `token ${OWNER}` } });
  assert.equal(outside.status, 404, 'no API outside the prefix');
  const issue = (await (await post(gh, '/repos/acme/lab/issues', { title: 'x' })).json()) as { url: string; html_url: string };
  assert.equal(issue.url, `${gh.apiUrl}/repos/acme/lab/issues/1`);
  assert.equal(issue.html_url, `${gh.webUrl}/acme/lab/issues/1`);
  const download = await fetch(`${gh.webUrl}/acme/lab/releases/download/v1.0/boot.efi`);
  assert.equal(download.status, 200, 'browser_download_url works for a public repository');
  assert.deepEqual(Buffer.from(await download.arrayBuffer()), BOOT);
});

test('closing the fake ends held requests and transfers in progress', async (t) => {
  const { gh, release } = await lab(t);
  const asset = gh.addAsset(release, { name: 'slow.img', bytes: Buffer.alloc(50_000), delivery: { bytesPerTick: 1_000, tickMs: 50 } });
  const hold = gh.holdNext({ path: '/repos/acme/lab/issues' });
  const held = post(gh, '/repos/acme/lab/issues', { title: 'never answered' });
  await hold.reached;
  const slow = await call(gh, `/repos/acme/lab/releases/assets/${asset.id}`, { headers: { accept: 'application/octet-stream' } });
  assert.equal(slow.status, 200);
  const started = Date.now();
  await gh.close();
  assert.ok(Date.now() - started < 1_000, 'close does not wait for them');
  await assert.rejects(held, TypeError);
  await assert.rejects(slow.arrayBuffer());
  assert.equal(gh.issues('acme/lab').length, 0);
});
