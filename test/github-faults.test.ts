import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { runFleet } from './fleet/simulator.ts';
import type { FakeGitHub } from './github/fake.ts';
import { OWNER, REPO, startGitHubLab, TAG } from './support/github-lab.ts';
import { mulberry32 } from './support/random.ts';

// Issue #7: a fleet runs to the end against a GitHub that fails about 30% of
// the requests dispatch makes to file reports (5xx, secondary rate limits with
// retry-after, and now and then an issue created whose answer is lost), and
// every report dispatch acknowledged is on GitHub exactly once.

const FULL = `${OWNER}/${REPO}`;
const SERVERS = 20;
const MARKER = /<!-- dispatch:report:([0-9a-f-]{36}) -->/;


/** Everything dispatch asks GitHub while filing: issues (create, list, comments), milestones, the token's user. Not release assets. */
const FILING = /\/repos\/[^/]+\/[^/]+\/(issues|milestones)(\/|\?|$)|\/user(\?|$)/;

function unreliable(fake: FakeGitHub, random: () => number) {
  // Tried in order; a request passed over by one goes on to the next:
  // 18% + 82% × 15% ≈ 30% of filing requests fail, and ~8% of the issue
  // creations that get through are acted on with the answer lost.
  const failures = [
    fake.failNext({ path: FILING, status: 502, times: Infinity, chance: 0.06, random }),
    fake.failNext({ path: FILING, status: 503, times: Infinity, chance: 0.064, random }),
    fake.failNext({ path: FILING, status: 500, times: Infinity, chance: 0.068, random }),
    fake.secondaryRateLimitNext({ path: FILING, status: 403, retryAfter: 1, times: Infinity, chance: 0.15, random }),
  ];
  const lost = fake.dropNext({ method: 'POST', path: `/repos/${FULL}/issues`, when: 'after', times: Infinity, chance: 0.08, random });
  return { failures, lost, stop: () => [...failures, lost].forEach((f) => f.cancel()) };
}

describe('GitHub failing a third of the time', () => {
  test(`${SERVERS} servers: every acknowledged report is filed exactly once and every job is final`, { timeout: 90_000 }, async (t) => {
    const workloads = Array.from({ length: SERVERS }, (_, i) => ({ name: `w${String(i).padStart(2, '0')}.efi`, bytes: randomBytes(2048 + i) }));
    const lab = await startGitHubLab(t, {
      setup: (fake) => fake.addRelease(FULL, { tag: TAG, assets: workloads.map((w) => ({ name: w.name, contentType: 'application/vnd.dispatch+efi', bytes: w.bytes })) }),
    });
    // After the start: a release GitHub would not give is another test.
    const faults = unreliable(lab.fake, mulberry32(7));

    const fleet = await runFleet({ url: lab.running.url, servers: SERVERS, deadlineMs: 30_000, requestTimeoutMs: 10_000 });
    for (const server of fleet.servers) {
      assert.equal(server.stopped, 'poweroff', `${server.ip}: ${server.error ?? server.stopped}`);
      assert.deepEqual(server.violations, [], server.ip);
    }
    const acknowledged = fleet.servers.flatMap((s) => s.boots.flatMap((b) => b.reports.filter((r) => r.status === 200).map((r) => r.title)));
    const sent = fleet.servers.flatMap((s) => s.boots.flatMap((b) => b.reports));
    assert.equal(acknowledged.length, SERVERS, `every report was acknowledged: ${JSON.stringify(sent.filter((r) => r.status !== 200))}`);

    const waited = await lab.until(
      'every job final with its reports filed',
      async () => (await lab.jobs()).every((j) => (j.state === 'finished' && j.reports.length === 1) || j.state === 'failed'),
      60_000,
    );
    faults.stop();

    const jobs = await lab.jobs();
    assert.deepEqual(jobs.filter((j) => j.state !== 'finished').map((j) => `${j.name}: ${j.state} ${j.reason}`), [], 'no job failed: GitHub trouble never fails a job');
    const issues = lab.fake.issues(FULL);
    const markers = issues.map((i) => MARKER.exec(i.body ?? '')?.[1]);
    assert.ok(markers.every((m) => m !== undefined), 'every issue carries its hidden marker');
    assert.equal(new Set(markers).size, issues.length, 'no marker twice: no report filed twice');
    assert.deepEqual(issues.map((i) => i.title).sort(), [...acknowledged].sort(), 'each acknowledged report is exactly one issue');
    const urls = jobs.flatMap((j) => j.reports);
    assert.equal(new Set(urls).size, SERVERS, 'each job lists its own issue');

    const filing = lab.fake.requestsTo('api').filter((r) => FILING.test(r.url));
    const failed = filing.filter((r) => r.fault !== null && r.fault !== 'drop').length;
    const dropped = filing.filter((r) => r.fault === 'drop').length;
    t.diagnostic(`${filing.length} filing requests: ${failed} failed (${Math.round((100 * failed) / filing.length)}%), ${dropped} issue creations acted on with the answer lost; all filed ${waited} ms after the fleet ended (fleet ${Math.round(fleet.ms)} ms)`);
    assert.ok(failed / filing.length > 0.15, `GitHub really failed often: ${failed} of ${filing.length}`);
    assert.ok(failed >= 5, 'enough failures to mean something');
  });
});
