import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { SimulatedClock } from 'xstate';
import { Queue, replayChanges, type QueueEvent, type QueueState } from '../src/jobs/index.ts';
import { fakeWorkload } from './support/workloads.ts';

// Rules 4 and 5 of DESIGN §5, and a queue saved and restored in every state
// (what --resume relies on). Time only moves when the test moves the clock.

const DOWNLOAD = 5 * 60_000;
const RUN = 60 * 60_000;
const NAMES = ['a.efi', 'b.efi', 'c.efi'];

function setup(options: { restore?: QueueState; clock?: SimulatedClock; runTimeoutLabel?: string } = {}) {
  const clock = options.clock ?? new SimulatedClock();
  if (!options.clock) clock.set(1_700_000_000_000);
  const queue = new Queue(NAMES.map((n) => fakeWorkload(n)), {
    clock,
    downloadTimeoutMs: DOWNLOAD,
    runTimeoutMs: RUN,
    ...(options.runTimeoutLabel === undefined ? {} : { runTimeoutLabel: options.runTimeoutLabel }),
    run: 'run-1',
    ...(options.restore === undefined ? {} : { restore: options.restore }),
  });
  const events: QueueEvent[] = [];
  queue.subscribe((e) => events.push(e));
  const job = (name: string) => queue.list().find((j) => j.name === name)!;
  /** Firmware HEAD and a complete GET. */
  const download = (ip: string) => {
    const claim = queue.claim(ip, 'HEAD');
    if (claim.kind !== 'job') throw new Error(`no job for ${ip}`);
    const transfer = queue.beginTransfer(claim.id, ip, { reachesEnd: true });
    transfer.progress(claim.workload.size);
    transfer.end(true);
    return claim.id;
  };
  const boot = (ip: string) => {
    const id = download(ip);
    assert.ok(queue.boot(ip), 'beacon boot is taken');
    return id;
  };
  return { clock, queue, events, job, download, boot };
}

/** A JSON round trip, as the state file makes it. */
function throughDisk(state: QueueState): QueueState {
  return JSON.parse(JSON.stringify(state)) as QueueState;
}

describe('rule 4: run timeout', () => {
  test('a job booting longer than the run timeout fails with the timeout in its reason, and a failure is due', () => {
    const { clock, job, events, boot } = setup({ runTimeoutLabel: '1h' });
    boot('10.0.0.1');
    clock.increment(RUN - 1);
    assert.equal(job('a.efi').state, 'booting');
    clock.increment(1);
    assert.equal(job('a.efi').state, 'failed');
    assert.equal(job('a.efi').reason, 'timed out after 1h');
    const failed = events.filter((e) => e.kind === 'failed');
    assert.equal(failed.length, 1, 'one failure report is due');
    assert.ok(job('a.efi').timeline.some((t) => t.what === 'failed: timed out after 1h'));
  });

  test('the timeout counts from the first beacon boot, not from a repeated one', () => {
    const { clock, queue, job, boot } = setup();
    boot('10.0.0.1');
    clock.increment(RUN / 2);
    assert.equal(queue.boot('10.0.0.1')?.state, 'booting', 'boot again is still 200');
    clock.increment(RUN / 2);
    assert.equal(job('a.efi').state, 'failed');
  });

  test('without a label, the reason says the timeout humanised', () => {
    const { clock, job, boot } = setup();
    boot('10.0.0.1');
    clock.increment(RUN);
    assert.equal(job('a.efi').reason, 'timed out after 1h');
  });

  test('a report before the timeout stops the clock', () => {
    const { clock, queue, job, boot } = setup();
    const id = boot('10.0.0.1');
    clock.increment(RUN - 1);
    queue.reportAccepted(id, 'done', 'k1');
    clock.increment(RUN * 2);
    assert.equal(job('a.efi').state, 'reported');
    queue.reportFiled(id, 'issue-1', 'k1');
    assert.equal(job('a.efi').state, 'finished');
  });

  test('a late report from the same server is still taken, and the job stays failed', () => {
    const { clock, queue, job, boot } = setup();
    const id = boot('10.0.0.1');
    clock.increment(RUN);
    assert.equal(queue.reportTarget('10.0.0.1'), id, 'the timed-out job takes its server’s late report');
    assert.equal(queue.reportTarget('10.0.0.2'), undefined, 'nobody else’s');
    assert.deepEqual(queue.reportAccepted(id, 'late result', 'k-late'), { late: true });
    assert.deepEqual(queue.unfiled(id), ['k-late']);
    queue.reportFiled(id, 'issue-9', 'k-late');
    assert.equal(job('a.efi').state, 'failed');
    assert.deepEqual(job('a.efi').reports, ['issue-9']);
    assert.deepEqual(queue.unfiled(id), []);
  });

  test('a job failed any other way takes no report', () => {
    const { queue, download } = setup();
    download('10.0.0.1');
    queue.claim('10.0.0.1', 'HEAD'); // rule 3: rebooted without report
    assert.equal(queue.reportTarget('10.0.0.1'), undefined);
  });

  test('once the server took its next job, reports go to that one, not the late one', () => {
    const { clock, queue, boot } = setup();
    boot('10.0.0.1');
    clock.increment(RUN);
    const next = queue.claim('10.0.0.1', 'HEAD');
    assert.equal(next.kind === 'job' && next.workload.name, 'b.efi');
    assert.equal(queue.reportTarget('10.0.0.1'), undefined, 'b is only assigned');
  });
});

describe('rule 5: broken downloads', () => {
  test('the same server retrying gets the same job; the third broken transfer fails it', () => {
    const { queue, job, events } = setup();
    const first = queue.claim('10.0.0.1', 'HEAD');
    if (first.kind !== 'job') throw new Error('expected a job');
    for (let n = 1; n <= 2; n += 1) {
      assert.deepEqual(queue.claim('10.0.0.1', 'GET'), first, 'rule 1: the same job');
      queue.beginTransfer(first.id, '10.0.0.1', { reachesEnd: true }).end(false);
      assert.equal(job('a.efi').state, 'downloading', `still downloading after ${n} break(s)`);
      assert.equal(job('a.efi').broken, n);
    }
    assert.deepEqual(queue.claimRange('10.0.0.1'), first, 'a resumed range is the same job too');
    queue.beginTransfer(first.id, '10.0.0.1', { reachesEnd: true, range: 'bytes 100-4095' }).end(false);
    assert.equal(job('a.efi').state, 'failed');
    assert.equal(job('a.efi').reason, 'download broke 3 times');
    assert.equal(job('a.efi').broken, 3);
    assert.equal(job('a.efi').attempts, 3, 'every transfer, broken ones too, is an attempt');
    assert.equal(events.filter((e) => e.kind === 'failed').length, 1);
    const next = queue.claim('10.0.0.1', 'HEAD');
    assert.equal(next.kind === 'job' && next.workload.name, 'b.efi', 'the server moves on');
  });

  test('completed transfers do not count, and two breaks then a good one boot normally', () => {
    const { queue, job } = setup();
    const claim = queue.claim('10.0.0.1', 'GET');
    if (claim.kind !== 'job') throw new Error('expected a job');
    queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true }).end(false);
    queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true }).end(false);
    queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true }).end(true);
    assert.equal(job('a.efi').state, 'downloading');
    assert.equal(job('a.efi').broken, 2);
    assert.equal(queue.boot('10.0.0.1')?.state, 'booting');
  });
});

describe('saved and restored (--resume)', () => {
  /** One queue with a job in every state: a finished, b reported, c booting; then more. */
  function everyState() {
    const lab = setup();
    const { queue, clock } = lab;
    const a = lab.boot('10.0.0.1');
    queue.reportAccepted(a, 'a ok', 'ka');
    queue.reportFiled(a, 'issue-a', 'ka');
    const b = lab.boot('10.0.0.2');
    queue.reportAccepted(b, 'b ok', 'kb');
    clock.increment(1_000);
    lab.boot('10.0.0.3');
    return { ...lab, a, b };
  }

  test('final, reported and booting jobs come back as they were, with their servers, reports and timelines', () => {
    const { queue, clock, job } = everyState();
    const before = queue.list();
    const saved = throughDisk(queue.persist());
    queue.stop();
    const after = setup({ restore: saved, clock });
    assert.equal(after.queue.run, 'run-1');
    for (const name of NAMES) {
      const was = before.find((j) => j.name === name)!;
      const now = after.job(name);
      assert.equal(now.state, was.state, `${name} state`);
      assert.equal(now.ip, was.ip, `${name} server`);
      assert.equal(now.since, was.since, `${name} since`);
      assert.deepEqual(now.reports, was.reports, `${name} reports`);
      assert.equal(now.attempts, was.attempts, `${name} attempts`);
      assert.deepEqual(now.timeline.slice(0, was.timeline.length), was.timeline, `${name} timeline kept`);
    }
    assert.equal(job('a.efi').state, 'finished');
    assert.equal(after.queue.reportTarget('10.0.0.3'), 2, 'the booting job still takes its server’s report');
    assert.equal(after.queue.reportTarget('10.0.0.2'), 1, 'a reported job too (rule 6)');
    assert.deepEqual(after.queue.unfiled(1), ['kb']);
    after.queue.reportFiled(1, 'issue-b', 'kb');
    assert.equal(after.job('b.efi').state, 'finished', 'a reported job finishes once its report is filed');
    assert.deepEqual(after.queue.claim('10.0.0.9', 'HEAD'), { kind: 'poweroff' }, 'nothing is handed out twice');
  });

  test('a booting job keeps counting its run timeout from the original boot', () => {
    const { queue, clock } = everyState();
    // c booted at t0 + 1 s; 40 minutes later dispatch is killed and restarted 10 minutes after that.
    clock.increment(40 * 60_000);
    const saved = throughDisk(queue.persist());
    queue.stop();
    clock.increment(10 * 60_000);
    const after = setup({ restore: saved, clock });
    assert.equal(after.job('c.efi').state, 'booting');
    clock.increment(10 * 60_000 - 1);
    assert.equal(after.job('c.efi').state, 'booting', 'not before an hour since its boot');
    clock.increment(1);
    assert.equal(after.job('c.efi').state, 'failed');
    assert.equal(after.job('c.efi').reason, 'timed out after 1h');
    assert.equal(after.events.filter((e) => e.kind === 'failed').length, 1);
  });

  test('a booting job past its timeout when restored fails at once', () => {
    const { queue, clock } = everyState();
    const saved = throughDisk(queue.persist());
    queue.stop();
    clock.increment(2 * RUN);
    const after = setup({ restore: saved, clock });
    clock.increment(0);
    assert.equal(after.job('c.efi').state, 'failed');
  });

  test('assigned and downloading jobs stay their servers’ for a fresh download timeout, then go back to the pool first in line', () => {
    const lab = setup();
    lab.queue.claim('10.0.0.1', 'HEAD'); // a assigned
    const b = lab.queue.claim('10.0.0.2', 'GET'); // b downloading
    if (b.kind !== 'job') throw new Error('expected a job');
    lab.queue.beginTransfer(b.id, '10.0.0.2', { reachesEnd: true }).end(false);
    lab.clock.increment(DOWNLOAD - 1_000);
    const saved = throughDisk(lab.queue.persist());
    lab.queue.stop();
    const after = setup({ restore: saved, clock: lab.clock });
    assert.equal(after.job('a.efi').state, 'assigned');
    assert.equal(after.job('b.efi').state, 'downloading');
    assert.equal(after.job('b.efi').broken, 1, 'its count of broken transfers is kept');
    assert.ok(after.job('b.efi').timeline.some((t) => /dispatch restarted: still 10\.0\.0\.2's until the download timeout/.test(t.what)));
    // Rule 1 across the restart: a Range resume and a retried HEAD get the same bytes.
    const range = after.queue.claimRange('10.0.0.2');
    assert.equal(range.kind === 'job' && range.workload.name, 'b.efi');
    assert.equal(after.queue.claim('10.0.0.1', 'GET').kind === 'job' && after.job('a.efi').ip, '10.0.0.1');
    const fresh = setup({ restore: saved, clock: lab.clock });
    lab.clock.increment(DOWNLOAD - 1);
    assert.equal(fresh.job('a.efi').state, 'assigned', 'the timeout counts afresh from the restart');
    lab.clock.increment(1);
    assert.equal(fresh.job('a.efi').state, 'unassigned');
    assert.equal(fresh.job('b.efi').state, 'unassigned');
    assert.equal(fresh.job('b.efi').ip, null);
    assert.deepEqual(fresh.queue.claimRange('10.0.0.2'), { kind: 'none' }, 'the old holder has nothing to resume');
    const first = fresh.queue.claim('10.0.0.5', 'HEAD');
    assert.equal(first.kind === 'job' && first.workload.name, 'a.efi');
  });

  test('failed jobs stay failed, with their reason and failure report', () => {
    const lab = setup();
    const id = lab.boot('10.0.0.1');
    lab.clock.increment(RUN);
    lab.queue.failureStored(id, 'outbox/f.json');
    lab.queue.failureFiled(id, 'issue-f');
    const saved = throughDisk(lab.queue.persist());
    lab.queue.stop();
    const after = setup({ restore: saved, clock: lab.clock });
    assert.equal(after.job('a.efi').state, 'failed');
    assert.equal(after.job('a.efi').reason, 'timed out after 1h');
    assert.deepEqual(after.queue.failure(id), { key: 'outbox/f.json', ref: 'issue-f' });
    assert.equal(after.queue.reportTarget('10.0.0.1'), id, 'a late report is still taken after a restart');
    assert.equal(after.events.filter((e) => e.kind === 'failed').length, 0, 'no second failure report is due');
  });

  test('unassigned jobs and the poweroff list come back: a powered-off server resumes poweroff.efi', () => {
    const lab = setup();
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) lab.boot(ip);
    assert.deepEqual(lab.queue.claim('10.0.0.4', 'HEAD'), { kind: 'poweroff' });
    const saved = throughDisk(lab.queue.persist());
    lab.queue.stop();
    const after = setup({ restore: saved, clock: lab.clock });
    assert.deepEqual(after.queue.claimRange('10.0.0.4'), { kind: 'poweroff' });
    const fresh = setup();
    const again = setup({ restore: throughDisk(fresh.queue.persist()), clock: fresh.clock });
    assert.deepEqual(again.queue.list().map((j) => j.state), ['unassigned', 'unassigned', 'unassigned']);
    const claim = again.queue.claim('10.0.0.1', 'HEAD');
    assert.equal(claim.kind === 'job' && claim.workload.name, 'a.efi');
  });

  test('a saved run of other workloads is refused', () => {
    const lab = setup();
    const saved = throughDisk(lab.queue.persist());
    const other = { ...saved, jobs: saved.jobs.map((j, i) => (i === 1 ? { ...j, name: 'z.efi' } : j)) };
    assert.throws(() => setup({ restore: other }), /other workloads/);
  });

  test('the saved text always says what persist() says, however the jobs moved since the last save', () => {
    const lab = setup();
    const check = (step: string) => assert.deepEqual(JSON.parse(lab.queue.persistJson()), throughDisk(lab.queue.persist()), step);
    check('fresh');
    const a = lab.boot('10.0.0.1');
    check('booting');
    lab.queue.reportAccepted(a, 'one', 'key-1');
    check('reported');
    lab.queue.reportFiled(a, 'https://github.com/o/r/issues/1', 'key-1');
    check('finished');
    lab.queue.reportAccepted(a, 'two', 'key-2');
    check('reported again');
    const claim = lab.queue.claim('10.0.0.2', 'HEAD');
    check('assigned');
    if (claim.kind !== 'job') throw new Error('expected a job');
    lab.queue.beginTransfer(claim.id, '10.0.0.2', { reachesEnd: true }).end(false);
    check('broken once');
    lab.clock.increment(DOWNLOAD);
    check('back in the pool');
    lab.boot('10.0.0.3');
    lab.clock.increment(RUN);
    check('timed out');
    const failed = lab.queue.list().find((job) => job.state === 'failed')!;
    lab.queue.failureStored(failed.id, 'failure-key');
    check('failure stored');
    lab.queue.failureFiled(failed.id, 'https://github.com/o/r/issues/2');
    check('failure filed');
    lab.queue.claim('10.0.0.9', 'GET');
    lab.queue.claim('10.0.0.8', 'GET');
    check('powered off');
    // Unchanged jobs reuse their text: the same string twice in a row.
    assert.equal(lab.queue.persistJson().replace(/"savedAt":\d+/, ''), lab.queue.persistJson().replace(/"savedAt":\d+/, ''));
  });

  test('journal entries replayed onto an earlier picture say what persist() says, however the jobs moved', () => {
    const lab = setup();
    const picture = throughDisk(lab.queue.persist());
    const entries: unknown[] = [];
    const take = () => {
      const text = lab.queue.changesJson();
      if (text !== undefined) entries.push(JSON.parse(text));
    };
    const check = (step: string) => {
      take();
      assert.deepEqual(replayChanges(picture, entries), throughDisk(lab.queue.persist()), step);
    };
    check('nothing yet');
    assert.equal(entries.length, 0, 'no change, no entry');
    const a = lab.boot('10.0.0.1');
    check('booting');
    assert.equal(lab.queue.changesJson(), undefined, 'an entry holds each change once');
    lab.queue.reportAccepted(a, 'one', 'key-1');
    lab.queue.reportFiled(a, 'https://github.com/o/r/issues/1', 'key-1');
    check('finished');
    const claim = lab.queue.claim('10.0.0.2', 'HEAD');
    if (claim.kind !== 'job') throw new Error('expected a job');
    lab.queue.claim('10.0.0.2', 'HEAD');
    check('assigned, and a HEAD again');
    lab.queue.beginTransfer(claim.id, '10.0.0.2', { reachesEnd: true }).end(false);
    lab.clock.increment(DOWNLOAD);
    check('back in the pool: the server holds nothing');
    lab.boot('10.0.0.3');
    lab.clock.increment(RUN);
    const failed = lab.queue.list().find((job) => job.state === 'failed')!;
    lab.queue.failureStored(failed.id, 'failure-key');
    lab.queue.failureFiled(failed.id, 'https://github.com/o/r/issues/2');
    check('timed out, failure filed');
    lab.boot('10.0.0.2');
    lab.queue.claim('10.0.0.9', 'GET');
    check('powered off');
    lab.queue.claim('10.0.0.9', 'HEAD');
    check('powered off again: no change');
    // What --resume does with it: the restored queue is the one that was saved.
    const again = setup({ restore: replayChanges(picture, entries), clock: lab.clock });
    assert.deepEqual(again.queue.list().map((j) => [j.name, j.state, j.ip]), lab.queue.list().map((j) => [j.name, j.state, j.ip]));
    assert.deepEqual(again.queue.claim('10.0.0.7', 'HEAD'), { kind: 'poweroff' }, 'nothing is handed out twice');
  });

  test('a journal entry that does not fit the picture is refused', () => {
    const lab = setup();
    const picture = throughDisk(lab.queue.persist());
    lab.boot('10.0.0.1');
    const entry = JSON.parse(lab.queue.changesJson()!) as { jobs: [number, { name: string }][]; servers: unknown[] };
    assert.throws(() => replayChanges(picture, [{ ...entry, jobs: [[7, entry.jobs[0]![1]]] }]), /journal entry 1: a job that is not in the run/);
    assert.throws(() => replayChanges(picture, [entry, { ...entry, jobs: [[0, { ...entry.jobs[0]![1], name: 'z.efi' }]] }]), /journal entry 2: a job that is not in the run/);
    assert.throws(() => replayChanges(picture, [{ ...entry, servers: [['10.0.0.1', 9, false]] }]), /a server entry that does not fit/);
    assert.throws(() => replayChanges(picture, ['garbage']), /not a journal entry/);
  });

  test('every transition asks to be saved; progress does not', () => {
    const lab = setup();
    let changes = 0;
    lab.queue.onChange(() => (changes += 1));
    const claim = lab.queue.claim('10.0.0.1', 'GET');
    if (claim.kind !== 'job') throw new Error('expected a job');
    assert.ok(changes >= 1, 'assign');
    const transfer = lab.queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true });
    const started = changes;
    for (let i = 1; i <= 50; i += 1) {
      lab.clock.increment(2_000);
      transfer.progress(i);
    }
    assert.equal(changes, started, 'progress is not a transition');
    transfer.end(true);
    assert.equal(changes, started + 1, 'download complete');
    lab.clock.increment(DOWNLOAD);
    assert.equal(lab.job('a.efi').state, 'unassigned');
    assert.equal(changes, started + 2, 'a timer’s transition too');
  });
});

describe('saved after a stop', () => {
  test('a queue saved after stop() (the last save at a clean stop) restores with working timers', () => {
    const lab = setup();
    lab.boot('10.0.0.1');
    lab.queue.stop();
    const saved = throughDisk(lab.queue.persist());
    assert.ok(saved.jobs.every((j) => (j.snapshot as { status: string }).status === 'active'));
    const after = setup({ restore: saved, clock: lab.clock });
    lab.clock.increment(RUN);
    assert.equal(after.job('a.efi').state, 'failed', 'the run timeout still fires');
  });
});
