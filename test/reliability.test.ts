import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { SimulatedClock } from 'xstate';
import { Queue, type QueueState } from '../src/jobs/index.ts';
import type { GitHub } from '../src/github/index.ts';
import { GitHubSink, Outbox, Reporter, type Filing, type ReportSink, type StoredFiling } from '../src/report/index.ts';
import { fakeWorkload } from './support/workloads.ts';
import { splitReport, startLab } from './fleet/lab.ts';
import { OWNER, REPO, startGitHubLab, TAG } from './support/github-lab.ts';

// Rules 4 and 5 and --resume through real sockets, dispatch in process: the
// directory sink (Markdown files) and the fake GitHub (issues).

const FULL = `${OWNER}/${REPO}`;

/** Report files in the directory, by kind, with their text. */
async function reportFiles(dir: string) {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.md')).sort();
  return Promise.all(names.map(async (name) => ({ name, path: join(dir, name), text: await readFile(join(dir, name), 'utf8') })));
}

describe('rule 4: run timeout (directory sink)', () => {
  test('a workload that runs past --run-timeout fails its job with a failure file; its late report is taken and the two name each other', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 3000, 'b.efi': 3000 }, runTimeoutMs: 300 });
    const server = lab.server(0);
    assert.equal((await server.head()).status, 200);
    assert.equal((await server.get()).status, 200);
    assert.equal((await server.post()).status, 200);
    await lab.until('a.efi to time out', async () => (await lab.job('a.efi')).state === 'failed', 5_000);
    const failed = await lab.job('a.efi');
    assert.equal(failed.reason, 'timed out after 300ms');
    await lab.until('the failure file', async () => (await lab.job('a.efi')).reports.length === 1);
    const [failure] = await reportFiles(lab.reports);
    assert.ok(failure && failure.name.endsWith('-failed.md'), 'a failure report is written');
    assert.match(splitReport(failure.text).front.reason!, /timed out after 300ms/);

    const late = await server.put({ title: 'memtest: 0 errors (late)', body: 'all passes done' });
    assert.equal(late.status, 200, 'a late report is still acknowledged');
    await lab.until('the late report filed', async () => (await lab.job('a.efi')).reports.length === 2);
    const job = await lab.job('a.efi');
    assert.equal(job.state, 'failed', 'the job stays failed');
    const files = await reportFiles(lab.reports);
    const lateFile = files.find((f) => !f.name.endsWith('-failed.md'))!;
    assert.ok(lateFile, 'the late report is a file of its own');
    assert.deepEqual(job.reports, [failure.path, lateFile.path]);
    const { body } = splitReport(lateFile.text);
    assert.match(body, /arrived after the run timeout/);
    assert.ok(body.includes(`a.efi failed on 127.0.0.2: timed out after 300ms`), 'the late report names its failure');
    assert.ok(body.includes(failure.path), 'and where it is');
    assert.match(body, /all passes done/);
    const note = (await readFile(failure.path, 'utf8'));
    assert.ok(note.includes(lateFile.path), 'the failure file names the late report');
    assert.match(note, /after this job had timed out: "memtest: 0 errors \(late\)"/);

    // Another server's report is not taken for it, and the server moves on.
    assert.equal((await lab.server(1).put({ title: 'not mine' })).status, 417);
    const next = await server.head();
    assert.equal(next.status, 200);
    assert.equal((await lab.job('b.efi')).ip, server.ip);
  });

  test('a report in time stops the clock', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 3000 }, runTimeoutMs: 400 });
    const server = lab.server(0);
    await server.head();
    await server.get();
    await server.post();
    assert.equal((await server.put({ title: 'ok' })).status, 200);
    await delay(700);
    assert.equal((await lab.job('a.efi')).state, 'finished');
  });
});

describe('rule 5: broken downloads', () => {
  test('three broken transfers fail the job with a failure file; the server then gets the next job', async (t) => {
    // Big enough that a broken transfer cannot already sit whole in the socket buffers.
    const lab = await startLab(t, { workloads: { 'a.img': 8 * 1024 * 1024, 'b.efi': 3000 } });
    const server = lab.server(0);
    assert.equal((await server.head()).status, 200);
    for (let n = 1; n <= 3; n += 1) {
      const get = await server.request('GET', { headers: { Accept: '*/*', 'User-Agent': 'UefiHttpBoot/1.0' }, breakAfter: 65_536 });
      assert.ok(get.broken);
      assert.equal(get.headers['content-length'], String(8 * 1024 * 1024), `attempt ${n} is the same job`);
      if (n < 3) await lab.until(`break ${n} counted`, () => lab.view('a.img').broken === n);
    }
    await lab.until('a.img failed', async () => (await lab.job('a.img')).state === 'failed');
    const job = await lab.job('a.img');
    assert.equal(job.reason, 'download broke 3 times');
    assert.equal(job.attempts, 3);
    await lab.until('the failure file', async () => (await reportFiles(lab.reports)).some((f) => f.name.endsWith('-failed.md')));
    const head = await server.head();
    assert.equal(head.headers['content-length'], '3000', 'the next job, b.efi');
    assert.equal((await lab.job('b.efi')).ip, server.ip);
  });
});

describe('rule 4 on GitHub', () => {
  test('a late report becomes an issue that names the failure, and the failure issue gets a comment naming it', async (t) => {
    const lab = await startGitHubLab(t, {
      runTimeoutMs: 300,
      setup: (fake) => fake.addRelease(FULL, { tag: TAG, assets: [{ name: 'a.efi', contentType: 'application/vnd.dispatch+efi', bytes: randomBytes(2000) }] }),
    });
    const server = lab.server(0);
    await server.head();
    await server.get();
    assert.equal((await server.post()).status, 200);
    await lab.until('the failure issue', async () => (await lab.job('a.efi')).reports.length === 1);
    const failure = lab.fake.issues(FULL).find((i) => i.title === 'a.efi failed on 127.0.0.2: timed out after 300ms');
    assert.ok(failure, 'a failure issue is filed');
    assert.equal((await server.put({ title: 'late result', body: 'numbers' })).status, 200);
    await lab.until('the late issue', async () => (await lab.job('a.efi')).reports.length === 2);
    const late = lab.fake.issues(FULL).find((i) => i.title === 'late result');
    assert.ok(late, 'the late report is filed');
    assert.match(late.body ?? '', /arrived after the run timeout/);
    assert.ok((late.body ?? '').includes(`${lab.fake.webUrl}/${FULL}/issues/${failure.number}`), 'the late issue links the failure issue');
    await lab.until('the comment on the failure', () => lab.fake.comments(FULL, failure.number).length === 1);
    const comment = lab.fake.comments(FULL, failure.number)[0]!;
    assert.ok(comment.body.includes(`${lab.fake.webUrl}/${FULL}/issues/${late.number}`), 'the failure issue links the late one');
    assert.equal((await lab.job('a.efi')).state, 'failed');
    assert.equal(lab.fake.issues(FULL).length, 2);
  });
});

describe('--resume in process', () => {
  const release = (fake: Parameters<Parameters<typeof startGitHubLab>[1]['setup']>[0]) =>
    fake.addRelease(FULL, {
      tag: TAG,
      assets: [
        { name: 'a.efi', contentType: 'application/vnd.dispatch+efi', bytes: randomBytes(2000) },
        { name: 'b.efi', contentType: 'application/vnd.dispatch+efi', bytes: randomBytes(2000) },
        { name: 'c.efi', contentType: 'application/vnd.dispatch+efi', bytes: randomBytes(2000) },
      ],
    });

  test('a booting job takes its report after a restart; a reported one finishes once its stored report is filed; a final one stays final', async (t) => {
    const lab = await startGitHubLab(t, { setup: release });
    const [s1, s2, s3] = [lab.server(0), lab.server(1), lab.server(2)];
    for (const s of [s1, s2, s3]) {
      await s.head();
      await s.get();
      assert.equal((await s.post()).status, 200);
    }
    // a: reported and filed (finished). b: reported, but GitHub holds its filing past the stop. c: booting.
    assert.equal((await s1.put({ title: 'a done' })).status, 200);
    await lab.until('a finished', async () => (await lab.job('a.efi')).state === 'finished');
    const held = lab.fake.holdNext({ method: 'POST', path: `/repos/${FULL}/issues`, when: 'after' });
    assert.equal((await s2.put({ title: 'b done' })).status, 200);
    await held.reached;
    const closing = lab.restart({ resume: true });
    await delay(700); // past the stop grace: b stays in the outbox, created on GitHub but never heard of
    held.release();
    await closing;
    assert.ok(lab.logs.some((l) => /--resume: continuing run/.test(l)), 'the run is resumed');
    await lab.until('b finished after the restart', async () => (await lab.job('b.efi')).state === 'finished');
    assert.equal((await lab.job('a.efi')).state, 'finished');
    assert.equal((await lab.job('c.efi')).state, 'booting');
    assert.equal((await s3.put({ title: 'c done' })).status, 200, 'the booting job still takes its server’s report');
    await lab.until('c finished', async () => (await lab.job('c.efi')).state === 'finished');
    for (const title of ['a done', 'b done', 'c done']) {
      assert.equal(lab.fake.issues(FULL).filter((i) => i.title === title).length, 1, `${title} filed exactly once`);
    }
    const b = await lab.job('b.efi');
    assert.equal(b.reports.length, 1, 'b lists its issue');
    assert.equal(b.ip, s2.ip);
  });

  test('a run timeout that ran out while dispatch was down fails the job once, and the late report is still linked', async (t) => {
    const lab = await startGitHubLab(t, { setup: release, runTimeoutMs: 1_000 });
    const server = lab.server(0);
    await server.head();
    await server.get();
    assert.equal((await server.post()).status, 200);
    await lab.restart({ resume: true, downMs: 1_500 });
    await lab.until('a failed', async () => (await lab.job('a.efi')).reports.length === 1, 5_000);
    const job = await lab.job('a.efi');
    assert.equal(job.state, 'failed');
    assert.equal(job.reason, 'timed out after 1s');
    assert.equal((await server.put({ title: 'late after restart' })).status, 200);
    await lab.until('the late report filed', async () => (await lab.job('a.efi')).reports.length === 2);
    await delay(300);
    const failures = lab.fake.issues(FULL).filter((i) => / failed on /.test(i.title));
    assert.equal(failures.length, 1, 'one failure issue');
    await lab.until('the link on the failure', () => lab.fake.comments(FULL, failures[0]!.number).length === 1);
  });

  test('without --resume the run starts afresh, but reports an earlier run stored are still filed', async (t) => {
    const lab = await startGitHubLab(t, { setup: release });
    const s1 = lab.server(0);
    await s1.head();
    await s1.get();
    await s1.post();
    const held = lab.fake.holdNext({ method: 'POST', path: `/repos/${FULL}/issues`, when: 'after' });
    assert.equal((await s1.put({ title: 'from the first run' })).status, 200);
    await held.reached;
    const closing = lab.restart();
    await delay(700);
    held.release();
    await closing;
    assert.deepEqual((await lab.jobs()).map((j) => j.state), ['unassigned', 'unassigned', 'unassigned']);
    await lab.until('the earlier report filed', () => lab.fake.issues(FULL).filter((i) => i.title === 'from the first run').length === 1);
  });
});

describe('when the state cannot be saved', () => {
  test('beacon boot gets a 500 until it can, and a report is stored and filed anyway', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 3000 } });
    const runs = join(lab.dir, 'state', 'runs');
    const [folder] = await readdir(runs);
    const path = join(runs, folder!);
    const server = lab.server(0);
    await server.head();
    await server.get();
    // The state's folder turns into a file: every save fails (ENOTDIR), even for root.
    await delay(200); // the saves of HEAD and GET are done
    await rm(path, { recursive: true });
    await writeFile(path, 'in the way');
    const refused = await server.post();
    assert.equal(refused.status, 500, 'no 200 for a state that is not on disk');
    assert.ok(lab.logs.some((l) => /state: cannot save the run state/.test(l)));
    const put = await server.put({ title: 'stored anyway' });
    assert.equal(put.status, 500);
    await lab.until('the report filed', async () => (await reportFiles(lab.reports)).some((f) => f.text.includes('title: "stored anyway"')));
    await lab.until('the job finished', async () => (await lab.job('a.efi')).state === 'finished');
    await rm(path);
    await mkdir(path);
    assert.equal((await server.post()).status, 417, 'the job moved on: a boot now is refused');
    assert.equal((await server.put({ title: 'second' })).status, 200, 'saves work again');
    assert.ok(JSON.parse(await readFile(join(path, 'state.json'), 'utf8')));
  });
});

describe('reporter after a restart', () => {
  test('the outbox recovers what earlier runs stored, never what this process stored itself', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'dispatch-outbox-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const github = { describe: () => 'stub', owner: 'acme', repo: 'lab', close: () => undefined } as unknown as GitHub;
    const outbox = new Outbox(dir);
    const job = new Queue([fakeWorkload('a.efi')], { clock: new SimulatedClock(), downloadTimeoutMs: 60_000 }).get(0)!;
    const filing = (title: string): Filing => ({ kind: 'report', report: { title, body: '', labels: [], assignees: [], milestone: null }, job, receivedAt: 0 });
    const earlier = await outbox.add(filing('from before'), 1);
    const sink = new GitHubSink({ github, outbox, log: () => undefined });
    await sink.store(filing('from now'));
    const recovered = await sink.recover();
    assert.deepEqual(recovered.map((s) => s.filing.report.title), ['from before']);
    assert.equal(recovered[0]!.ref, outbox.path(earlier));
  });

  test('a run timeout that fires while the outbox is being read is filed once, not again as a missing failure', async () => {
    const clock = new SimulatedClock();
    clock.set(1_700_000_000_000);
    const options = { clock, downloadTimeoutMs: 60_000, runTimeoutMs: 1_000, run: 'r1' };
    const before = new Queue([fakeWorkload('a.efi')], options);
    before.claim('10.0.0.1', 'GET');
    before.beginTransfer(0, '10.0.0.1', { reachesEnd: true }).end(true);
    before.boot('10.0.0.1');
    const saved = JSON.parse(JSON.stringify(before.persist())) as QueueState;
    before.stop();
    clock.increment(5_000);
    const queue = new Queue([fakeWorkload('a.efi')], { ...options, restore: saved });
    const stores: Filing[] = [];
    let outboxRead!: () => void;
    const storing: Array<() => void> = [];
    const storeDone = () => storing.splice(0).forEach((resolve) => resolve());
    const sink: ReportSink = {
      description: 'fake',
      recover: () => new Promise<StoredFiling[]>((resolve) => (outboxRead = () => resolve([]))),
      store: async (filing) => {
        stores.push(filing);
        await new Promise<void>((resolve) => storing.push(resolve));
        return { filing, ref: `stored-${stores.length}` };
      },
      file: async (stored) => `filed-${stored.ref}`,
    };
    const reporter = new Reporter({ queue, sink, clock, log: () => undefined });
    const recovering = reporter.recover();
    clock.increment(0); // the timeout left is 0: it fires now, while the outbox is read
    assert.equal(queue.get(0)!.state, 'failed');
    assert.equal(stores.length, 1, 'its failure is being stored');
    outboxRead();
    await recovering;
    storeDone();
    await delay(10);
    storeDone();
    await reporter.idle();
    assert.equal(stores.filter((f) => f.kind === 'failure').length, 1, 'stored once');
    assert.deepEqual(queue.failure(0), { key: 'stored-1', ref: 'filed-stored-1' });
  });
});
