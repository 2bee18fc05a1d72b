import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { SimulatedClock } from 'xstate';
import { Queue, type QueueEvent } from '../src/jobs/index.ts';
import { fakeWorkload } from './support/workloads.ts';

const TIMEOUT = 5 * 60_000;

function setup(names = ['a.efi', 'b.efi', 'c.efi']) {
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const queue = new Queue(names.map((n) => fakeWorkload(n)), { clock, downloadTimeoutMs: TIMEOUT });
  const events: QueueEvent[] = [];
  queue.subscribe((e) => events.push(e));
  const state = (name: string) => queue.list().find((j) => j.name === name)!;
  /** Firmware: HEAD, then a complete GET. */
  const download = (ip: string) => {
    const claim = queue.claim(ip, 'HEAD');
    assert.equal(claim.kind, 'job');
    if (claim.kind !== 'job') throw new Error('unreachable');
    assert.equal(queue.claim(ip, 'GET').kind, 'job');
    const transfer = queue.beginTransfer(claim.id, ip, { reachesEnd: true });
    transfer.progress(claim.workload.size);
    transfer.end(true);
    return claim;
  };
  return { clock, queue, events, state, download };
}

describe('assignment', () => {
  test('jobs go out in name order, one per server', () => {
    const { queue } = setup(['b.efi', 'a.efi', 'c.efi']);
    // The queue keeps the order it is given; sources sort by name.
    const first = queue.claim('10.0.0.1', 'HEAD');
    const second = queue.claim('10.0.0.2', 'HEAD');
    assert.equal(first.kind === 'job' && first.workload.name, 'b.efi');
    assert.equal(second.kind === 'job' && second.workload.name, 'a.efi');
  });

  test('HEAD assigns and never moves a job past assigned, however often it comes', () => {
    const { queue, state } = setup();
    for (let i = 0; i < 5; i += 1) queue.claim('10.0.0.1', 'HEAD');
    assert.equal(state('a.efi').state, 'assigned');
    assert.equal(state('a.efi').ip, '10.0.0.1');
    assert.equal(state('b.efi').state, 'unassigned');
  });

  test('rule 1: a retry from the server that holds a job gets the same job', () => {
    const { queue, state } = setup();
    const head = queue.claim('10.0.0.1', 'HEAD');
    const get = queue.claim('10.0.0.1', 'GET');
    assert.deepEqual(get, head);
    if (get.kind !== 'job') throw new Error('unreachable');
    queue.beginTransfer(get.id, '10.0.0.1', { reachesEnd: true }).end(false);
    // The transfer broke: the firmware starts over and must get the same bytes.
    assert.deepEqual(queue.claim('10.0.0.1', 'HEAD'), head);
    assert.deepEqual(queue.claim('10.0.0.1', 'GET'), head);
    assert.equal(state('a.efi').broken, 1);
    assert.equal(state('b.efi').state, 'unassigned');
  });

  test('GET moves an assigned job to downloading and counts the attempt', () => {
    const { queue, state } = setup();
    const claim = queue.claim('10.0.0.1', 'GET');
    if (claim.kind !== 'job') throw new Error('expected a job');
    queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true });
    assert.equal(state('a.efi').state, 'downloading');
    assert.equal(state('a.efi').attempts, 1);
  });

  test('a server with nothing left to run is told to power off', () => {
    const { queue, events } = setup(['a.efi']);
    queue.claim('10.0.0.1', 'HEAD');
    assert.deepEqual(queue.claim('10.0.0.2', 'HEAD'), { kind: 'poweroff' });
    assert.ok(events.some((e) => e.kind === 'poweroff' && e.ip === '10.0.0.2'));
  });
});

describe('resumed downloads', () => {
  test('a range from the holder is the same job, even with others waiting', () => {
    const { queue } = setup();
    const claim = queue.claim('10.0.0.1', 'GET');
    assert.deepEqual(queue.claimRange('10.0.0.1'), claim);
  });

  test('a range from a server that holds nothing is refused, never the next job', () => {
    const { queue } = setup();
    assert.deepEqual(queue.claimRange('10.0.0.9'), { kind: 'none' });
  });

  test('a server that was sent poweroff.efi resumes poweroff.efi', () => {
    const { queue } = setup([]);
    queue.claim('10.0.0.1', 'GET');
    assert.deepEqual(queue.claimRange('10.0.0.1'), { kind: 'poweroff' });
  });

  test('a range that ends at the last byte completes the transfer', () => {
    const { queue, state } = setup();
    const claim = queue.claim('10.0.0.1', 'GET');
    if (claim.kind !== 'job') throw new Error('expected a job');
    queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true }).end(false);
    queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: false, range: 'bytes 0-9' }).end(true);
    // Only part of the file: a HEAD now is still a retry, not a reboot.
    assert.equal(queue.claim('10.0.0.1', 'HEAD').kind, 'job');
    assert.equal(state('a.efi').state, 'downloading');
    queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true, range: 'bytes 10-4095' }).end(true);
    queue.claim('10.0.0.1', 'HEAD');
    assert.equal(state('a.efi').state, 'failed');
  });
});

describe('rule 2: download timeout', () => {
  test('an assigned job with no progress goes back to the pool for any server', () => {
    const { clock, queue, state } = setup();
    queue.claim('10.0.0.1', 'HEAD');
    clock.increment(TIMEOUT - 1);
    assert.equal(state('a.efi').state, 'assigned');
    clock.increment(1);
    assert.equal(state('a.efi').state, 'unassigned');
    assert.equal(state('a.efi').ip, null);
    const claim = queue.claim('10.0.0.2', 'HEAD');
    assert.equal(claim.kind === 'job' && claim.workload.name, 'a.efi');
  });

  test('progress keeps a slow download alive; silence does not', () => {
    const { clock, queue, state } = setup();
    const claim = queue.claim('10.0.0.1', 'GET');
    if (claim.kind !== 'job') throw new Error('expected a job');
    const transfer = queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true });
    for (let sent = 1; sent <= 10; sent += 1) {
      clock.increment(TIMEOUT - 1_000);
      transfer.progress(sent);
      assert.equal(state('a.efi').state, 'downloading', `still downloading after ${sent} slow chunks`);
    }
    clock.increment(TIMEOUT);
    assert.equal(state('a.efi').state, 'unassigned');
  });

  test('a job that timed out is first in line again, before later names', () => {
    const { clock, queue } = setup();
    queue.claim('10.0.0.1', 'HEAD'); // a
    queue.claim('10.0.0.2', 'HEAD'); // b
    clock.increment(TIMEOUT);
    const next = queue.claim('10.0.0.3', 'HEAD');
    assert.equal(next.kind === 'job' && next.workload.name, 'a.efi');
  });

  test('the old holder of a timed-out job starts afresh, and its late transfer changes nothing', () => {
    const { clock, queue, state } = setup();
    const claim = queue.claim('10.0.0.1', 'GET');
    if (claim.kind !== 'job') throw new Error('expected a job');
    const late = queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true });
    clock.increment(TIMEOUT);
    queue.claim('10.0.0.2', 'HEAD'); // a, to the other server
    late.end(true);
    assert.equal(state('a.efi').state, 'assigned');
    assert.equal(state('a.efi').ip, '10.0.0.2');
    assert.deepEqual(queue.claimRange('10.0.0.1'), { kind: 'none' });
  });
});

describe('rule 3: rebooted without report', () => {
  test('a server back after a full download fails that job and gets the next one', () => {
    const { queue, state, events, download } = setup();
    download('10.0.0.1');
    const next = queue.claim('10.0.0.1', 'HEAD');
    assert.equal(next.kind === 'job' && next.workload.name, 'b.efi');
    assert.equal(state('a.efi').state, 'failed');
    assert.equal(state('a.efi').reason, 'rebooted without report');
    const failed = events.filter((e) => e.kind === 'failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.kind === 'failed' && failed[0]!.job.ip, '10.0.0.1');
    assert.ok(failed[0]!.kind === 'failed' && failed[0]!.job.timeline.some((t) => t.what.includes('download complete')));
  });

  test('a booting server that asks again fails its job the same way', () => {
    const { queue, state, download } = setup();
    download('10.0.0.1');
    assert.ok(queue.boot('10.0.0.1'));
    queue.claim('10.0.0.1', 'GET');
    assert.equal(state('a.efi').state, 'failed');
    assert.equal(state('b.efi').ip, '10.0.0.1');
  });

  test('a server that reported and reboots just gets the next job', () => {
    const { queue, state, download } = setup();
    const claim = download('10.0.0.1');
    queue.boot('10.0.0.1');
    queue.reportAccepted(claim.id, 'ok');
    queue.reportFiled(claim.id, 'r1.md');
    queue.claim('10.0.0.1', 'HEAD');
    assert.equal(state('a.efi').state, 'finished');
    assert.equal(state('b.efi').state, 'assigned');
  });
});

describe('beacon boot', () => {
  test('boot is refused without a downloaded job and accepted (again) after one', () => {
    const { queue, state, download } = setup();
    assert.equal(queue.boot('10.0.0.1'), undefined);
    queue.claim('10.0.0.1', 'HEAD');
    assert.equal(queue.boot('10.0.0.1'), undefined, 'assigned is not bootable');
    download('10.0.0.1');
    assert.equal(queue.boot('10.0.0.1')?.state, 'booting');
    assert.equal(queue.boot('10.0.0.1')?.state, 'booting');
    assert.equal(state('a.efi').state, 'booting');
  });
});

describe('rules 6 and 7: reports', () => {
  test('reports attach while booting, reported or finished, and each is kept', () => {
    const { queue, state, download } = setup();
    const claim = download('10.0.0.1');
    assert.equal(queue.reportTarget('10.0.0.1'), undefined, 'downloading cannot report yet');
    queue.boot('10.0.0.1');
    assert.equal(queue.reportTarget('10.0.0.1'), claim.kind === 'job' ? claim.id : -1);
    queue.reportAccepted(claim.id, 'first');
    queue.reportAccepted(claim.id, 'second');
    assert.equal(state('a.efi').state, 'reported');
    queue.reportFiled(claim.id, 'one.md');
    assert.equal(state('a.efi').state, 'reported', 'rule 7: not finished while a report is unfiled');
    queue.reportFiled(claim.id, 'two.md');
    assert.equal(state('a.efi').state, 'finished');
    assert.equal(queue.reportTarget('10.0.0.1'), claim.id);
    queue.reportAccepted(claim.id, 'third');
    assert.equal(state('a.efi').state, 'reported');
    queue.reportFiled(claim.id, 'three.md');
    assert.equal(state('a.efi').state, 'finished');
    assert.deepEqual(state('a.efi').reports, ['one.md', 'two.md', 'three.md']);
  });

  test('no report target for a server without a job, or whose job failed or is new', () => {
    const { queue, download } = setup();
    assert.equal(queue.reportTarget('10.0.0.1'), undefined);
    download('10.0.0.1');
    queue.claim('10.0.0.1', 'HEAD'); // rule 3 fails a, assigns b
    assert.equal(queue.reportTarget('10.0.0.1'), undefined);
  });

  test('a failure report is recorded on the failed job', () => {
    const { queue, state, download } = setup();
    const claim = download('10.0.0.1');
    queue.claim('10.0.0.1', 'HEAD');
    queue.failureFiled(claim.id, 'failed.md');
    assert.deepEqual(state('a.efi').reports, ['failed.md']);
    assert.equal(state('a.efi').state, 'failed');
  });
});

describe('events and timeline', () => {
  test('every change is an event with the job, its server and what happened', () => {
    const { events, download } = setup();
    download('10.0.0.1');
    const lines = events.filter((e) => e.kind === 'job').map((e) => e.kind === 'job' && `${e.job.state} ${e.job.ip} ${e.what}`);
    assert.deepEqual(lines, [
      'assigned 10.0.0.1 assigned to 10.0.0.1 (HEAD)',
      'downloading 10.0.0.1 download started, attempt 1',
      'downloading 10.0.0.1 download complete (4096 bytes)',
    ]);
  });

  test('since is the time the job entered its state', () => {
    const { clock, queue, state } = setup();
    const start = clock.now();
    queue.claim('10.0.0.1', 'HEAD');
    clock.increment(1234);
    assert.equal(state('a.efi').since, start);
    const claim = queue.claim('10.0.0.1', 'GET');
    if (claim.kind !== 'job') throw new Error('expected a job');
    queue.beginTransfer(claim.id, '10.0.0.1', { reachesEnd: true });
    assert.equal(state('a.efi').since, start + 1234);
  });

  test('the timeline is capped but keeps its first entry and the latest ones', () => {
    const clock = new SimulatedClock();
    const queue = new Queue([fakeWorkload('a.efi')], { clock, downloadTimeoutMs: TIMEOUT, maxTimeline: 5 });
    for (let i = 0; i < 20; i += 1) queue.claim('10.0.0.1', 'HEAD');
    const job = queue.list()[0]!;
    assert.equal(job.timeline.length, 5);
    assert.match(job.timeline[0]!.what, /^assigned/);
    assert.equal(job.dropped, 15);
  });
});
