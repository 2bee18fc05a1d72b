import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { access, readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import type { JobState } from '../src/jobs/index.ts';
import { splitReport, startLab } from './fleet/lab.ts';
import { overlappingRuns, runFleet, type BootPlan, type ServerPlan } from './fleet/simulator.ts';

// DESIGN §5 through real sockets: what happens to a job as servers boot,
// report, reboot, stall and misbehave.

const THREE = { 'a.efi': 4096, 'b.img': 5000, 'c.iso': 6000 };

describe('rule 1: a firmware retry is not a new job', () => {
  test('repeated HEADs from the same server get the same job', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    const lengths = [];
    for (let i = 0; i < 3; i += 1) lengths.push((await server.head()).headers['content-length']);
    assert.deepEqual(lengths, ['4096', '4096', '4096']);
    assert.deepEqual(
      (await lab.jobs()).map((j) => [j.state, j.ip]),
      [
        ['assigned', server.ip],
        ['unassigned', null],
        ['unassigned', null],
      ],
    );
  });

  test('a server whose download broke gets the same job on its next HEAD and GET', async (t) => {
    const lab = await startLab(t, { workloads: { 'big.img': 8 * 1024 * 1024, 'next.efi': 4096 } });
    const server = lab.server(0);
    await server.head();
    const broken = await server.request('GET', { headers: { Accept: '*/*', 'User-Agent': 'UefiHttpBoot/1.0' }, breakAfter: 65_536 });
    assert.equal(broken.broken, true);
    await lab.until('the broken transfer to be noticed', () => lab.view('big.img').broken === 1);
    // An older firmware starts over instead of resuming.
    const head = await server.head();
    assert.equal(head.headers['content-length'], String(8 * 1024 * 1024));
    const get = await server.get();
    assert.ok(get.body.equals(lab.bytes.get('big.img')!));
    assert.deepEqual(
      (await lab.jobs()).map((j) => [j.name, j.state, j.ip, j.attempts]),
      [
        ['big.img', 'downloading', server.ip, 2],
        ['next.efi', 'unassigned', null, 0],
      ],
    );
  });
});

describe('rule 2: a job with no download progress goes back to the pool', () => {
  test('an assigned job nobody downloads is handed to the next server that asks', async (t) => {
    const timeoutMs = 300;
    const lab = await startLab(t, { workloads: THREE, downloadTimeoutMs: timeoutMs });
    const stalled = lab.server(0);
    const started = Date.now();
    await stalled.head();
    assert.deepEqual([(await lab.job('a.efi')).state, (await lab.job('a.efi')).ip], ['assigned', stalled.ip]);
    // The timeout is what is tested: wait for it, bounded well past it.
    await lab.until('a.efi to go back to the pool', async () => (await lab.job('a.efi')).state === 'unassigned', 5_000);
    assert.ok(Date.now() - started >= timeoutMs, `back in the pool after ${Date.now() - started} ms, before the ${timeoutMs} ms timeout`);
    const other = lab.server(1);
    const head = await other.head();
    assert.equal(head.headers['content-length'], '4096');
    const a = await lab.job('a.efi');
    assert.deepEqual([a.state, a.ip], ['assigned', other.ip]);
    assert.equal((await lab.job('b.img')).state, 'unassigned');
  });

  test('the server that stalled no longer holds the job: its resume is refused', async (t) => {
    const lab = await startLab(t, { workloads: THREE, downloadTimeoutMs: 300 });
    const stalled = lab.server(0);
    await stalled.head();
    await lab.until('a.efi to go back to the pool', async () => (await lab.job('a.efi')).state === 'unassigned', 5_000);
    const resume = await stalled.get('bytes=100-4095');
    assert.equal(resume.status, 416);
    assert.equal((await lab.job('a.efi')).state, 'unassigned');
  });
});

describe('rule 3: a reboot without a report fails the job', () => {
  test('a server that reboots without reporting fails its job and gets the next one', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    await server.get();
    assert.equal((await server.post()).status, 200);
    const head = await server.head();
    assert.equal(head.headers['content-length'], '5000');
    assert.equal(head.headers['content-type'], 'application/vnd.efi-img');
    assert.deepEqual(
      (await lab.jobs()).map((j) => [j.name, j.state, j.ip, j.reason]),
      [
        ['a.efi', 'failed', server.ip, 'rebooted without report'],
        ['b.img', 'assigned', server.ip, null],
        ['c.iso', 'unassigned', null, null],
      ],
    );
  });

  test('a server that reboots right after a complete download fails that job too', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    await server.get();
    await lab.until('the transfer to be recorded', () => lab.view('a.efi').timeline.some((e) => e.what.startsWith('download complete')));
    const head = await server.head();
    assert.equal(head.headers['content-length'], '5000');
    const a = await lab.job('a.efi');
    assert.deepEqual([a.state, a.reason], ['failed', 'rebooted without report']);
  });

  test('the failure is filed as a report naming the workload, the server and the timeline', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    await server.get();
    // A real server takes seconds to boot; here the POST could beat dispatch's own note that the transfer ended.
    await lab.until('the transfer to be recorded', () => lab.view('a.efi').timeline.some((e) => e.what.startsWith('download complete')));
    await server.post();
    await server.head();
    await lab.running.reporter.idle();
    const a = await lab.job('a.efi');
    assert.equal(a.reports.length, 1);
    const { front, body } = splitReport(await readFile(a.reports[0]!, 'utf8'));
    assert.equal(front.kind, 'failure');
    assert.deepEqual(
      ['workload', 'ip', 'reason'].map((key) => JSON.parse(front[key]!)),
      ['a.efi', server.ip, 'rebooted without report'],
    );
    assert.match(body, /a\.efi/);
    assert.match(body, /127\.0\.0\.2/);
    assert.match(body, /rebooted without report/);
    // The timeline, in order: what a lab engineer reads to see what went wrong.
    const steps = ['assigned to 127.0.0.2 (HEAD)', 'download started', 'download complete (4096 bytes)', 'booting', 'failed: rebooted without report'];
    const at = steps.map((step) => body.indexOf(step));
    assert.ok(at.every((i) => i >= 0), `timeline steps in ${body}`);
    assert.deepEqual([...at].sort((x, y) => x - y), at);
  });
});

describe('rules 6 and 7: reports', () => {
  test('a report moves the job to reported, then to finished once it is filed', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    await server.get();
    await server.post();
    const states: JobState[] = [];
    const unsubscribe = lab.running.queue.subscribe((event) => {
      if (event.kind === 'job' && event.job.name === 'a.efi' && states.at(-1) !== event.job.state) states.push(event.job.state);
    });
    t.after(unsubscribe);
    assert.equal((await server.put({ title: 'passed' })).status, 200);
    await lab.running.reporter.idle();
    assert.deepEqual(states, ['reported', 'finished']);
    const a = await lab.job('a.efi');
    assert.equal(a.state, 'finished');
    assert.equal(a.reports.length, 1);
    await access(a.reports[0]!);
  });

  test('several reports from one boot are each filed, and all are listed on the job', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    await server.get();
    await server.post();
    const titles = ['cpu: pass', 'memory: pass', 'disk: 1 error'];
    for (const title of titles) assert.equal((await server.put({ title, body: `${title}\n` })).status, 200);
    await lab.running.reporter.idle();
    const a = await lab.job('a.efi');
    assert.equal(a.state, 'finished');
    assert.equal(new Set(a.reports).size, 3);
    const filed = await Promise.all(a.reports.map(async (file) => JSON.parse(splitReport(await readFile(file, 'utf8')).front.title!) as string));
    assert.deepEqual(filed.sort(), [...titles].sort());
  });

  test('a report after the job is finished is still accepted and filed', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    await server.get();
    await server.post();
    await server.put({ title: 'first' });
    await lab.running.reporter.idle();
    assert.equal((await lab.job('a.efi')).state, 'finished');
    assert.equal((await server.put({ title: 'late' })).status, 200);
    await lab.running.reporter.idle();
    const a = await lab.job('a.efi');
    assert.deepEqual([a.state, a.reports.length], ['finished', 2]);
  });

  test('a server that reported and reboots gets the next job and its finished job stays finished', async (t) => {
    const lab = await startLab(t, { workloads: THREE });
    const server = lab.server(0);
    await server.head();
    await server.get();
    await server.post();
    await server.put({ title: 'done' });
    await lab.running.reporter.idle();
    const head = await server.head();
    assert.equal(head.headers['content-length'], '5000');
    assert.deepEqual(
      (await lab.jobs()).map((j) => [j.state, j.reason]),
      [
        ['finished', null],
        ['assigned', null],
        ['unassigned', null],
      ],
    );
  });
});

describe('a fleet of simulated servers', () => {
  test('the simulated firmware sends what EDK2 sends: Host, Accept and User-Agent, HEAD and GET on one connection', async (t) => {
    // A stand-in for dispatch that serves poweroff.efi and writes down what it was sent.
    const poweroff = await readFile(new URL('../efi/poweroff.efi', import.meta.url));
    const seen: Array<{ method: string; headers: string[]; port: number | undefined; address: string | undefined }> = [];
    const stub = http.createServer((req, res) => {
      seen.push({ method: req.method!, headers: req.rawHeaders.filter((_, i) => i % 2 === 0), port: req.socket.remotePort, address: req.socket.remoteAddress });
      res.writeHead(200, { 'Content-Type': 'application/efi', 'Content-Length': poweroff.byteLength, 'Accept-Ranges': 'bytes' });
      res.end(req.method === 'HEAD' ? undefined : poweroff);
    });
    stub.listen(0, '127.0.0.1');
    await once(stub, 'listening');
    t.after(() => {
      stub.closeAllConnections();
      stub.close();
    });
    const log = await runFleet({ url: `http://127.0.0.1:${(stub.address() as AddressInfo).port}/dispatch`, servers: 1, firstAddress: 40, deadlineMs: 5_000 });
    assert.equal(log.servers[0]!.stopped, 'poweroff');
    assert.deepEqual(seen.map((s) => s.method), ['HEAD', 'GET']);
    for (const request of seen) {
      // Node adds `Connection: keep-alive`, which EDK2 does not send; HTTP/1.1 means the same without it.
      assert.deepEqual(request.headers.filter((h) => h !== 'Connection').sort(), ['Accept', 'Host', 'User-Agent']);
      assert.equal(request.address, '127.0.0.42');
    }
    assert.equal(seen[0]!.port, seen[1]!.port);
  });

  test('six servers, some misbehaving, run ten workloads to the end and all power off', async (t) => {
    const types = ['efi', 'img', 'iso'];
    const workloads = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`w${i}.${types[i % 3]}`, 2048 + i * 1531]));
    const lab = await startLab(t, { workloads, maxReportBytes: 2048 });
    const noReport: BootPlan = { reports: [] };
    const plans: ServerPlan[] = [
      {},
      { boots: [noReport] },
      { then: { reports: [{ title: 'part 1' }, { title: 'part 2', labels: ['x'] }, { title: 'part 3', milestone: 'm' }] } },
      { boots: [{ breakAfter: 1000 }, { breakAfter: 2047 }] },
      { then: { garbage: ['not json', '{"body":"no title"}'], oversized: 4096 } },
      // Boots twice in a row without a report, then a workload that never says it booted.
      { boots: [{ beacons: 2, reports: [] }, { beacons: 0 }] },
    ];
    const log = await runFleet({ url: lab.url, servers: plans, requestTimeoutMs: 5_000, maxBoots: 20, deadlineMs: 20_000 });
    await lab.running.reporter.idle();

    for (const server of log.servers) {
      assert.equal(server.stopped, 'poweroff', `${server.ip}: ${server.error ?? server.stopped}`);
      assert.deepEqual(server.violations, [], server.ip);
      assert.equal(server.boots.at(-1)!.poweroff, true, server.ip);
    }
    assert.deepEqual(overlappingRuns(log), []);

    // Every workload ran on exactly one server, and every download was one of them, byte for byte.
    const runs = log.servers.flatMap((server) => server.boots.filter((b) => !b.poweroff).map((boot) => ({ ip: server.ip, boot, name: lab.names.get(boot.workload!.sha256) })));
    assert.deepEqual(runs.map((r) => r.name).sort(), Object.keys(workloads).sort());
    // EDK2 keeps one connection for HEAD and GET unless the transfer broke.
    log.servers.forEach((server, i) => {
      for (const boot of server.boots) {
        const plan = plans[i]!.boots?.[boot.index] ?? plans[i]!.then ?? {};
        if (plan.breakAfter === undefined) assert.equal(boot.sameConnection, true, `${server.ip} boot ${boot.index}`);
      }
    });

    // What each server was told, by its script.
    const byIp = new Map(log.servers.map((s) => [s.ip, s]));
    const first = (ip: string) => byIp.get(ip)!.boots[0]!;
    assert.deepEqual(first('127.0.0.5').resumed, { from: 1000, status: 206, contentRange: `bytes 1000-${first('127.0.0.5').announced.size - 1}/${first('127.0.0.5').announced.size}` });
    for (const boot of byIp.get('127.0.0.6')!.boots.filter((b) => !b.poweroff)) {
      assert.deepEqual([boot.garbage, boot.oversized, boot.reports.map((r) => r.status)], [[400, 400], 413, [200]]);
    }
    assert.deepEqual(first('127.0.0.7').beacons, [200, 200]);
    const silent = byIp.get('127.0.0.7')!.boots[1];
    if (silent && !silent.poweroff) assert.deepEqual([silent.beacons, silent.reports.map((r) => r.status)], [[], [417]]);

    // The jobs end as the servers' behaviour says they must.
    await lab.until('every failure to be filed', async () => (await lab.jobs()).every((j) => j.reports.length > 0));
    const jobs = new Map((await lab.jobs()).map((j) => [j.name, j]));
    for (const { ip, boot, name } of runs) {
      const job = jobs.get(name!)!;
      const accepted = boot.reports.filter((r) => r.status === 200).length;
      if (accepted > 0) {
        assert.deepEqual([job.state, job.ip, job.reports.length], ['finished', ip, accepted], name);
      } else {
        assert.deepEqual([job.state, job.ip, job.reason, job.reports.length], ['failed', ip, 'rebooted without report', 1], name);
      }
      for (const file of job.reports) {
        const { front } = splitReport(await readFile(file, 'utf8'));
        assert.deepEqual([JSON.parse(front.workload!), JSON.parse(front.ip!)], [name, ip]);
      }
    }
    assert.ok([...jobs.values()].every((j) => j.state === 'finished' || j.state === 'failed'));
    // The scripts guarantee at least these failures: 127.0.0.3's first boot, 127.0.0.7's first two.
    assert.ok([...jobs.values()].filter((j) => j.state === 'failed').length >= 2);
  });
});
