import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { FakeGitHub, FakeIssue } from './github/fake.ts';
import { sha256 } from './fleet/simulator.ts';
import { OWNER, REPO, startGitHubLab, TAG, TOKEN, type GitHubLab } from './support/github-lab.ts';

// A release served and its reports filed, end to end through real sockets:
// dispatch in process on 127.0.0.1, the fake GitHub (API host + a blob host on
// another origin), simulated servers on 127.0.0.2, .3, … (issue #3 item 8;
// DESIGN §4–§7).

const FULL = `${OWNER}/${REPO}`;
const ISSUES = `/repos/${OWNER}/${REPO}/issues`;
const MARKER = /<!-- dispatch:report:[0-9a-f-]{36} -->/;

/** The fake's requests for asset bytes, on either host. */
function assetRequests(fake: FakeGitHub) {
  return {
    api: fake.requestsTo('api').filter((r) => /\/releases\/assets\/\d+$/.test(r.path)),
    bytes: fake.requestsTo('bytes'),
  };
}

/** Issue-creation POSTs the fake received (whatever it answered). */
function creations(fake: FakeGitHub) {
  return fake.requestsTo('api').filter((r) => r.method === 'POST' && r.path === ISSUES);
}

/** HEAD, GET, beacon boot, beacon report, from one server; the GET's bytes must be the workload's. */
async function runWorkload(lab: GitHubLab, index: number, report: unknown, expect?: { name: string; bytes: Buffer }) {
  const server = lab.server(index);
  const head = await server.head();
  assert.equal(head.status, 200);
  const get = await server.get();
  assert.equal(get.status, 200);
  if (expect) assert.ok(get.body.equals(expect.bytes), `${server.ip} got the bytes of ${expect.name}`);
  assert.equal((await server.post()).status, 200);
  const put = await server.put(report);
  assert.equal(put.status, 200, put.body.toString());
  return server;
}

/** Wait until the job is finished and every report of it is on GitHub; its issues, in order. */
async function filed(lab: GitHubLab, name: string, count = 1): Promise<FakeIssue[]> {
  await lab.until(`${name} finished with ${count} report(s) filed`, async () => {
    const job = await lab.job(name);
    return job.state === 'finished' && job.reports.length === count;
  });
  const urls = (await lab.job(name)).reports;
  return urls.map((url) => {
    const issue = lab.fake.issues(FULL).find((i) => url === `${lab.fake.webUrl}/${FULL}/issues/${i.number}`);
    assert.ok(issue, `/api/jobs lists ${url}, which is an issue in ${FULL}`);
    return issue;
  });
}

function only<T>(items: readonly T[], what: string): T {
  assert.equal(items.length, 1, `exactly one ${what}, got ${items.length}`);
  return items[0]!;
}

describe('a release as the source', () => {
  const efi = randomBytes(5000);
  const iso = randomBytes(7000);
  const img = randomBytes(3000);
  const mixed = (fake: FakeGitHub) => {
    // Uploaded out of name order, with assets that are not workloads among them.
    fake.addRelease(FULL, {
      tag: TAG,
      assets: [
        { name: 'c-disk.img', contentType: 'application/vnd.dispatch+img', bytes: img },
        { name: 'notes.txt', contentType: 'text/plain', bytes: 'read me' },
        { name: 'a-boot.efi', contentType: 'application/vnd.dispatch+efi', bytes: efi },
        { name: 'b-live.iso', contentType: 'application/vnd.dispatch+iso', bytes: iso },
        { name: 'a-plain.efi', contentType: 'application/octet-stream', bytes: 'MZ not opted in' },
        { name: 'a-half.efi', contentType: 'application/vnd.dispatch+efi', bytes: 'MZ still uploading', state: 'open' },
      ],
    });
  };

  test('only dispatch assets are jobs, in name order; HEAD answers from the metadata alone; GET gives the exact bytes', async (t) => {
    const lab = await startGitHubLab(t, { setup: mixed });
    const jobs = await lab.jobs();
    assert.deepEqual(
      jobs.map((j) => [j.name, j.contentType, j.size, j.state]),
      [
        ['a-boot.efi', 'application/efi', efi.length, 'unassigned'],
        ['b-live.iso', 'application/vnd.efi-iso', iso.length, 'unassigned'],
        ['c-disk.img', 'application/vnd.efi-img', img.length, 'unassigned'],
      ],
    );

    const servers = [0, 1, 2].map((i) => lab.server(i));
    const heads = await Promise.all(servers.map((s) => s.head()));
    assert.deepEqual(
      heads.map((h) => [h.status, h.headers['content-type'], h.headers['content-length'], h.body.length]),
      [
        [200, 'application/efi', String(efi.length), 0],
        [200, 'application/vnd.efi-iso', String(iso.length), 0],
        [200, 'application/vnd.efi-img', String(img.length), 0],
      ],
    );
    const none = assetRequests(lab.fake);
    assert.equal(none.api.length + none.bytes.length, 0, 'HEAD downloaded nothing from GitHub');
    assert.deepEqual(await lab.cached(), [], 'nor put anything in the cache');

    const gets = await Promise.all(servers.map((s) => s.get()));
    for (const [i, bytes] of [efi, iso, img].entries()) {
      const get = gets[i]!;
      assert.equal(get.status, 200);
      assert.equal(get.headers['content-type'], heads[i]!.headers['content-type'], 'GET and HEAD agree on the type');
      assert.equal(get.headers['content-length'], String(bytes.length));
      assert.ok(get.body.equals(bytes), `${servers[i]!.ip} got the exact bytes`);
    }
    const after = assetRequests(lab.fake);
    assert.equal(after.api.length, 3, 'one asset API request per asset');
    assert.equal(after.bytes.length, 3, 'one blob download per asset');
    assert.deepEqual([...lab.running.cache!.fetched.values()], [1, 1, 1]);
    assert.deepEqual(lab.fake.errors, []);
  });

  test('filters keep the matching dispatch assets only, never a non-dispatch one that matches', async (t) => {
    const lab = await startGitHubLab(t, { setup: mixed, filters: ['a-', '.img'] });
    assert.deepEqual(
      (await lab.jobs()).map((j) => j.name),
      ['a-boot.efi', 'c-disk.img'],
    );
  });

  test('a private repository: bytes come with the token, which never reaches the blob host', async (t) => {
    const bytes = randomBytes(64 * 1024 + 17);
    const lab = await startGitHubLab(t, {
      private: true,
      setup: (fake) => fake.addRelease(FULL, { tag: TAG, assets: [{ name: 'secret.efi', contentType: 'application/vnd.dispatch+efi', bytes }] }),
    });
    const server = lab.server(0);
    assert.equal((await server.head()).headers['content-length'], String(bytes.length));
    const get = await server.get();
    assert.equal(get.status, 200);
    assert.ok(get.body.equals(bytes), 'the private asset arrived whole');

    const { api, bytes: blob } = assetRequests(lab.fake);
    assert.equal(only(api, 'asset API request').status, 302);
    assert.equal(api[0]!.headers.accept, 'application/octet-stream');
    const download = only(blob, 'blob download');
    assert.equal(download.status, 200);
    for (const request of lab.fake.requestsTo('bytes')) {
      assert.equal(request.authorization, false, 'no Authorization header on the blob host');
      assert.ok(!JSON.stringify(request.headers).includes(TOKEN), 'the token is nowhere in its headers');
    }
    for (const request of lab.fake.requestsTo('api')) {
      assert.match(String(request.headers.authorization), new RegExp(`^(bearer|token) ${TOKEN}$`, 'i'), `${request.method} ${request.path} carried the token`);
    }
    assert.ok(!lab.logs.join('\n').includes(TOKEN), 'the token is never logged');
  });

  test('an asset comes from GitHub once while several servers GET it, each served as the bytes arrive', async (t) => {
    // 256 KiB in four pieces 700 ms apart: a stall longer than the download
    // timeout, so the job goes back to the pool (rule 2) and the next server
    // takes it while the first is still reading and the upstream is still running.
    const bytes = randomBytes(256 * 1024);
    const lab = await startGitHubLab(t, {
      downloadTimeoutMs: 400,
      setup: (fake) =>
        fake.addRelease(FULL, {
          tag: TAG,
          assets: [{ name: 'slow.efi', contentType: 'application/vnd.dispatch+efi', bytes, delivery: { bytesPerTick: 64 * 1024, tickMs: 700 } }],
        }),
    });
    const upstreamRunning = () => {
      const blob = lab.fake.requestsTo('bytes');
      return blob.length === 1 && blob[0]!.outcome === 'pending' && lab.running.cache!.fetched.size === 0;
    };
    const early: boolean[] = [];
    const watch = () => early.push(upstreamRunning());
    const reads = [];
    for (const index of [0, 1, 2]) {
      if (index > 0) await lab.until('the stalled job back in the pool', async () => (await lab.job('slow.efi')).state === 'unassigned', 2_000);
      const server = lab.server(index);
      const head = await server.head();
      assert.equal(head.headers['content-length'], String(bytes.length), `${server.ip} was handed slow.efi`);
      const read = server.stream(watch);
      reads.push(read);
      // This server has its first bytes before the next one comes.
      await lab.until(`${server.ip}'s first bytes`, () => early.length > index, 2_000);
    }
    const results = await Promise.all(reads);
    assert.deepEqual(early, [true, true, true], 'every server had bytes while GitHub was still sending them');
    for (const [i, result] of results.entries()) {
      assert.equal(result.status, 200);
      assert.ok(result.complete, `server ${i}: ${result.error}`);
      assert.ok(result.body.equals(bytes), `server ${i} got the exact bytes`);
    }
    const { api, bytes: blob } = assetRequests(lab.fake);
    assert.equal(api.length, 1, 'one asset API request');
    assert.equal(blob.length, 1, 'one blob download');
    assert.equal(lab.running.cache!.fetched.get(lab.fake.repo(FULL).releases[0]!.assets[0]!.id), 1);

    // And later GETs come from the cache.
    await lab.until('back in the pool', async () => (await lab.job('slow.efi')).state === 'unassigned', 2_000);
    const later = lab.server(3);
    await later.head();
    assert.ok((await later.get()).body.equals(bytes));
    assert.equal(lab.fake.requestsTo('bytes').length, 1, 'still one blob download');
  });

  test('the cache deleted while dispatch runs: the next GET of a cached asset fetches it again and serves it whole', async (t) => {
    // Two assets with the same bytes: one file in the cache (it is keyed by digest).
    const bytes = randomBytes(96 * 1024);
    const lab = await startGitHubLab(t, {
      setup: (fake) =>
        fake.addRelease(FULL, {
          tag: TAG,
          assets: ['one.efi', 'two.efi'].map((name) => ({ name, contentType: 'application/vnd.dispatch+efi', bytes })),
        }),
    });
    /** One complete file in the cache. */
    const cachedWhole = async () => {
      const files = await lab.cached();
      return files.length === 1 && !files[0]!.endsWith('.part');
    };
    const first = lab.server(0);
    await first.head();
    assert.ok((await first.get()).body.equals(bytes));
    await lab.until('the asset in the cache', cachedWhole);
    // "Deleting the cache is always safe" (README), also while a lab runs.
    await rm(join(lab.stateDir, 'cache'), { recursive: true });
    const second = lab.server(1);
    assert.equal((await second.head()).headers['content-length'], String(bytes.length));
    const got = await second.get();
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(bytes), 'the exact bytes, fetched again');
    assert.equal(assetRequests(lab.fake).bytes.length, 2, 'fetched from GitHub a second time');
    assert.equal((await lab.job('two.efi')).state, 'downloading', 'a whole transfer, not a broken one');
    await lab.until('the asset in the cache again', cachedWhole);
    assert.ok(lab.logs.some((l) => /two\.efi: no longer in the cache: fetching it again/.test(l)), 'the log says so');
  });

  test('a digest mismatch is never served whole and never cached', async (t) => {
    const bytes = randomBytes(200 * 1024);
    const lab = await startGitHubLab(t, {
      setup: (fake) =>
        fake.addRelease(FULL, {
          tag: TAG,
          assets: [{ name: 'lying.efi', contentType: 'application/vnd.dispatch+efi', bytes, digest: `sha256:${'0'.repeat(64)}`, delivery: { bytesPerTick: 50 * 1024, tickMs: 30 } }],
        }),
    });
    const server = lab.server(0);
    assert.equal((await server.head()).headers['content-length'], String(bytes.length));
    const got = await server.stream();
    assert.equal(got.status, 200);
    assert.equal(got.complete, false, 'the transfer broke');
    assert.ok(got.body.length < bytes.length, `${got.body.length} of ${bytes.length} bytes arrived`);
    assert.ok(got.firstByteAt !== null, 'it was being served as it arrived');
    assert.equal(only(lab.fake.requestsTo('bytes'), 'blob download').outcome, 'answered', 'GitHub sent it all');
    await lab.until('the partial download removed', async () => (await lab.cached()).length === 0, 2_000);
    assert.equal(lab.running.cache!.fetched.size, 0);
    assert.ok(lab.logs.some((l) => /lying\.efi: sha256 [0-9a-f]{64} does not match/.test(l)), 'the mismatch is logged');
    // Bytes that can never be right fail the job (with a failure issue) instead of going round the pool.
    await lab.until('the job to fail', async () => (await lab.job('lying.efi')).state === 'failed', 5_000);
    assert.match(String((await lab.job('lying.efi')).reason), /sha256 [0-9a-f]{64} does not match the release's digest/);
    await lab.until('the failure issue', () => lab.fake.issues(FULL).some((i) => /lying\.efi failed on/.test(i.title)), 10_000);
    const failure = lab.fake.issues(FULL).find((i) => /lying\.efi failed on/.test(i.title))!;
    assert.match(failure.body ?? '', /does not match the release's digest/);

    // The firmware resumes: refused. It starts over: the next thing to run (here poweroff.efi), never the bad bytes.
    const resumed = await server.get({ range: `bytes=${got.body.length}-` });
    assert.equal(resumed.status, 416);
    const fresh = await server.stream();
    assert.notEqual(fresh.body.length, bytes.length, 'not the bad workload again');
    assert.equal(lab.fake.requestsTo('bytes').length, 1, 'the asset came from GitHub once');
    assert.equal(assetRequests(lab.fake).api.length, 1);
    assert.deepEqual(await lab.cached(), []);
  });
});

describe('reports become issues', () => {
  const bytes = randomBytes(4096);
  const release = (...names: string[]) => (fake: FakeGitHub) =>
    fake.addRelease(FULL, { tag: TAG, assets: names.map((name) => ({ name, contentType: 'application/vnd.dispatch+efi', bytes })) });

  test('title, body, footer and marker, labels (created when new), assignees, milestone by title; exactly one issue', async (t) => {
    const lab = await startGitHubLab(t, {
      setup: (fake) => {
        release('memtest.efi')(fake);
        fake.addCollaborator(FULL, 'alice');
        fake.addLabel(FULL, 'hardware', 'b60205');
        // 130 milestones: the one named sits on the second page, and is closed.
        for (let n = 1; n <= 130; n += 1) fake.addMilestone(FULL, { title: `sprint ${n}`, state: n === 120 ? 'closed' : 'open' });
      },
    });
    const report = { title: 'memtest: 0 errors', body: 'All 16 GiB passed.\n\n| pass | errors |\n|---|---|\n| 1 | 0 |\n', labels: ['hardware', 'memtest-new'], assignees: ['alice'], milestone: 'sprint 120' };
    assert.equal(lab.fake.repo(FULL).labels.has('memtest-new'), false);
    const server = await runWorkload(lab, 0, report, { name: 'memtest.efi', bytes });
    const issue = only(await filed(lab, 'memtest.efi'), 'issue');
    assert.equal(only(lab.fake.issues(FULL), 'issue in the repository'), issue);
    assert.equal(issue.title, report.title);
    assert.ok(issue.body!.startsWith(report.body), 'the report body comes first, verbatim');
    assert.match(issue.body!, new RegExp(`workload \`memtest\\.efi\` · server \`${server.ip.replace(/\./g, '\\.')}\``));
    assert.match(issue.body!, /<summary>Timeline<\/summary>[\s\S]*assigned to 127\.0\.0\.2 \(HEAD\)[\s\S]*download complete[\s\S]*booting/);
    assert.match(issue.body!, MARKER);
    assert.ok(!issue.body!.includes('**dispatch:**'), 'no note: nothing was dropped');
    assert.deepEqual(issue.labels, ['hardware', 'memtest-new']);
    assert.equal(lab.fake.repo(FULL).labels.get('memtest-new')?.color, 'ededed', 'the unknown label was created');
    assert.deepEqual(issue.assignees, ['alice']);
    assert.equal(issue.milestone, 120, 'milestone by title → its number');
    assert.equal(creations(lab.fake).length, 1);
  });

  test('a milestone that does not exist: filed without it, and the issue says so', async (t) => {
    const lab = await startGitHubLab(t, {
      setup: (fake) => {
        release('a.efi')(fake);
        fake.addMilestone(FULL, { title: 'v1.0' });
      },
    });
    await runWorkload(lab, 0, { title: 'ran', body: 'fine', labels: ['lab'], milestone: 'v9.9' });
    const issue = only(await filed(lab, 'a.efi'), 'issue');
    assert.equal(issue.milestone, null);
    assert.deepEqual(issue.labels, ['lab'], 'the rest is still applied');
    assert.match(issue.body!, /no milestone "v9\.9" in acme\/lab: filed without a milestone/);
    assert.ok(issue.body!.includes('fine'));
    assert.equal(only(lab.fake.issues(FULL), 'issue').number, issue.number);
    assert.equal(creations(lab.fake).length, 1, 'known before asking: one creation');
  });

  test('a GitHub-compatible server without the milestone listing (404): filed without the milestone, never held back', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('a.efi') });
    lab.fake.failNext({ method: 'GET', path: '/repos/acme/lab/milestones', status: 404, times: Infinity });
    await runWorkload(lab, 0, { title: 'ran', body: 'fine', milestone: 'v1.0' });
    const issue = only(await filed(lab, 'a.efi'), 'issue');
    assert.equal(issue.milestone, null);
    assert.match(issue.body!, /could not look up milestone "v1\.0" in acme\/lab .*: filed without a milestone/);
    assert.equal(creations(lab.fake).length, 1);
  });

  test('an assignee GitHub refuses (422): filed without assignees, and the issue says so', async (t) => {
    const lab = await startGitHubLab(t, {
      setup: (fake) => {
        release('a.efi')(fake);
        fake.addCollaborator(FULL, 'alice');
        fake.addMilestone(FULL, { title: 'v1.0' });
      },
    });
    await runWorkload(lab, 0, { title: 'ran', body: 'fine', labels: ['lab'], assignees: ['alice', 'mallory'], milestone: 'v1.0' });
    const issue = only(await filed(lab, 'a.efi'), 'issue');
    assert.deepEqual(issue.assignees, []);
    assert.equal(issue.milestone, 1, 'the milestone stays');
    assert.deepEqual(issue.labels, ['lab']);
    assert.match(issue.body!, /GitHub would not assign @\u200balice, @\u200bmallory in acme\/lab: filed without assignees/);
    assert.equal(only(lab.fake.issues(FULL), 'issue').number, issue.number);
    assert.deepEqual(creations(lab.fake).map((r) => r.status), [422, 201]);
  });

  test('a 200,000-character report arrives whole: the issue and its comments, in order, give it back exactly', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('long.efi') });
    // Lines of varied length and some non-ASCII, so cuts land at line breaks and inside text alike.
    const lines: string[] = [];
    for (let i = 0; lines.join('\n').length < 200_000; i += 1) lines.push(`${String(i).padStart(5, '0')} ${'ünïcode-and-ascii '.repeat(i % 11)}${'x'.repeat(i % 37)}`);
    const body = lines.join('\n').slice(0, 200_000);
    assert.equal(body.length, 200_000);
    await runWorkload(lab, 0, { title: 'a long log', body });
    const issue = only(await filed(lab, 'long.efi'), 'issue');
    const comments = lab.fake.comments(FULL, issue.number);
    assert.ok(comments.length >= 3, `${comments.length} comments`);
    for (const text of [issue.body!, ...comments.map((c) => c.body)]) assert.ok([...text].length <= 65_536, 'each part fits GitHub');

    const note = issue.body!.indexOf('\n\n> **dispatch:** this report is longer than a GitHub issue can hold');
    assert.ok(note > 0, 'the issue says the report continues');
    const parts = [issue.body!.slice(0, note)];
    comments.forEach((comment, i) => {
      const head = `**Report continued (part ${i + 2} of ${comments.length + 1})**\n\n`;
      assert.ok(comment.body.startsWith(head), `comment ${i + 1} is part ${i + 2}`);
      const end = comment.body.search(/\n\n<!-- dispatch:report:[0-9a-f-]{36}:part:\d+ -->$/);
      assert.ok(end > 0, `comment ${i + 1} ends with its marker`);
      parts.push(comment.body.slice(head.length, end));
    });
    assert.ok(parts.join('') === body, 'issue + comments carry the report exactly: nothing dropped, repeated or reordered');
    assert.equal(creations(lab.fake).length, 1);
  });

  test('GitHub failing 3 times (5xx) on issue creation, then working: filed exactly once', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('a.efi') });
    const fault = lab.fake.failNext({ method: 'POST', path: ISSUES, status: 502, times: 3 });
    await runWorkload(lab, 0, { title: 'survived GitHub being down', body: 'ok' });
    const issue = only(await filed(lab, 'a.efi'), 'issue');
    assert.equal(fault.hits, 3);
    assert.deepEqual(creations(lab.fake).map((r) => r.status), [502, 502, 502, 201]);
    assert.equal(only(lab.fake.issues(FULL), 'issue').number, issue.number);
    const times = creations(lab.fake).map((r) => r.at);
    const gaps = times.slice(1).map((at, i) => at - times[i]!);
    // Backoff 1 s, 2 s, 4 s (each gap also holds the marker lookup).
    gaps.forEach((gap, i) => assert.ok(gap >= 1000 * 2 ** i - 50, `gap ${i + 1}: ${gap} ms`));
  });

  test('a primary rate limit with its reset 2 s ahead: waits for the reset, then files once', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('a.efi') });
    lab.fake.rateLimitNext({ method: 'POST', path: ISSUES, resetIn: 2 });
    await runWorkload(lab, 0, { title: 'patient', body: 'ok' });
    only(await filed(lab, 'a.efi', 1), 'issue');
    const [limited, created] = creations(lab.fake);
    assert.equal(limited?.status, 403);
    assert.equal(created?.status, 201);
    const reset = Math.floor(limited!.at / 1000) + 2;
    assert.ok(created!.at >= reset * 1000, `retried at ${created!.at}, reset at ${reset * 1000}`);
    assert.equal(lab.fake.issues(FULL).length, 1);
  });

  test('a secondary rate limit with retry-after: waits that long, then files once', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('a.efi') });
    lab.fake.secondaryRateLimitNext({ method: 'POST', path: ISSUES, status: 429, retryAfter: 2 });
    await runWorkload(lab, 0, { title: 'patient', body: 'ok' });
    only(await filed(lab, 'a.efi', 1), 'issue');
    const [limited, created] = creations(lab.fake);
    assert.equal(limited?.status, 429);
    assert.equal(created?.status, 201);
    assert.ok(created!.at - limited!.at >= 2000, `waited ${created!.at - limited!.at} ms`);
    assert.equal(lab.fake.issues(FULL).length, 1);
  });

  test('with octokit throttling on, as in production: a primary then a secondary limit are waited out, filed once', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('a.efi'), throttle: true });
    // Rules take requests in the order they were added: the first POST, then its retry.
    lab.fake.rateLimitNext({ method: 'POST', path: ISSUES, resetIn: 1 });
    lab.fake.secondaryRateLimitNext({ method: 'POST', path: ISSUES, retryAfter: 1 });
    await runWorkload(lab, 0, { title: 'patient', body: 'ok' });
    only(await filed(lab, 'a.efi', 1), 'issue');
    const [primary, secondary, created] = creations(lab.fake);
    assert.deepEqual([primary?.status, secondary?.status, created?.status], [403, 403, 201]);
    assert.ok(secondary!.at >= (Math.floor(primary!.at / 1000) + 1) * 1000, 'waited for the reset');
    assert.ok(created!.at - secondary!.at >= 1000, `waited the retry-after: ${created!.at - secondary!.at} ms`);
    assert.ok(lab.logs.some((l) => l.startsWith('github: rate limited on POST')));
    assert.ok(lab.logs.some((l) => l.startsWith('github: secondary rate limit on POST')));
    assert.equal(lab.fake.issues(FULL).length, 1);
  });

  test('the issue was created but the answer lost: the marker finds it, no duplicate', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('a.efi') });
    lab.fake.dropNext({ method: 'POST', path: ISSUES, when: 'after' });
    await runWorkload(lab, 0, { title: 'once only', body: 'ok' });
    const issue = only(await filed(lab, 'a.efi'), 'issue');
    assert.equal(only(lab.fake.issues(FULL), 'issue').number, issue.number);
    assert.equal(creations(lab.fake).length, 1, 'never asked to create it again');
    assert.ok(lab.fake.requestsTo('api').some((r) => r.method === 'GET' && r.path === ISSUES), 'looked for the marker');
    assert.ok(lab.logs.some((l) => l.includes('was already filed as')));
  });

  test('the answer lost, then dispatch restarted before its retry: the next run finds the issue, no duplicate', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('a.efi') });
    lab.fake.dropNext({ method: 'POST', path: ISSUES, when: 'after' });
    await runWorkload(lab, 0, { title: 'across a restart', body: 'ok' });
    await lab.until('the lost answer noticed', () => lab.logs.some((l) => /filing "across a restart" .* failed: .*trying again/.test(l)));
    assert.equal(lab.fake.issues(FULL).length, 1, 'GitHub has it');
    const outbox = join(lab.stateDir, 'outbox');
    const pending = async () => (await readdir(outbox, { recursive: true })).filter((f) => f.endsWith('.json') && !f.includes('filed'));
    assert.equal((await pending()).length, 1, 'not known to be filed: still in the outbox');
    await lab.restart();
    await lab.until('the outbox empty', async () => (await pending()).length === 0);
    assert.equal(lab.fake.issues(FULL).length, 1, 'still one issue');
    assert.equal(creations(lab.fake).length, 1, 'never created twice');
    assert.ok(lab.logs.some((l) => l.includes('already filed as')));
  });

  test('a workload that reboots without reporting: a failure issue with the timeline', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('a.efi', 'b.efi') });
    const server = lab.server(0);
    await server.head();
    assert.ok((await server.get()).body.equals(bytes));
    assert.equal((await server.post()).status, 200);
    // The server comes back asking for its next workload without having reported.
    const again = await server.head();
    assert.equal(again.status, 200);
    await lab.until('the failure filed', async () => (await lab.job('a.efi')).reports.length === 1);
    const job = await lab.job('a.efi');
    assert.equal(job.state, 'failed');
    assert.equal(job.reason, 'rebooted without report');
    const issue = only(lab.fake.issues(FULL), 'issue');
    assert.equal(job.reports[0], `${lab.fake.webUrl}/${FULL}/issues/${issue.number}`);
    assert.equal(issue.title, 'a.efi failed on 127.0.0.2: rebooted without report');
    for (const event of ['assigned to 127.0.0.2 (HEAD)', 'download complete', 'booting', 'failed: rebooted without report']) {
      assert.ok(issue.body!.includes(event), `the timeline shows "${event}"`);
    }
    assert.match(issue.body!, MARKER);
    assert.equal((await lab.job('b.efi')).ip, server.ip, 'and the server got its next job');
  });

  test('a job goes reported → finished only once its issue exists; /api/jobs lists the issue', async (t) => {
    const lab = await startGitHubLab(t, { setup: release('a.efi') });
    const hold = lab.fake.holdNext({ method: 'POST', path: ISSUES });
    await runWorkload(lab, 0, { title: 'held', body: 'ok' });
    await hold.reached;
    const waiting = await lab.job('a.efi');
    assert.equal(waiting.state, 'reported');
    assert.deepEqual(waiting.reports, []);
    assert.equal(lab.fake.issues(FULL).length, 0);
    hold.release();
    const issue = only(await filed(lab, 'a.efi'), 'issue');
    const done = await lab.job('a.efi');
    assert.equal(done.state, 'finished');
    assert.deepEqual(done.reports, [`${lab.fake.webUrl}/${FULL}/issues/${issue.number}`]);
  });
});
