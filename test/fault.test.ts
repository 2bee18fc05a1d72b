import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { apiJobs } from './fleet/lab.ts';
import { overlappingRuns, runFleet, type FleetLog } from './fleet/simulator.ts';
import { startFakeGitHub } from './github/fake.ts';
import { mulberry32 } from './support/random.ts';

// A lab night with a dispatch that keeps dying: the real CLI in its own
// process, against the fake GitHub, serving a fleet of simulated servers,
// SIGKILLed at random moments and started again with --resume on the same
// port. Whatever it acknowledged must be filed exactly once, and every job
// must end final. Set FAULT_SEED to replay a run.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const TOKEN = 'ghp_FaultTestToken000000000000000000000';
const KILLS = 4;
// Octokit spaces issue creations 3 s apart (GitHub's secondary limits), and
// the CLI keeps that on: each report costs 3 s of filing, so few of them.
const WORKLOADS = 12;
const SERVERS = 4;


async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('SIGKILLed at random points and resumed: every acknowledged report is filed exactly once and every job ends final', { timeout: 120_000 }, async (t) => {
  const seed = Number(process.env.FAULT_SEED ?? Math.floor(Math.random() * 1_000_000));
  t.diagnostic(`FAULT_SEED=${seed}`);
  const next = mulberry32(seed);

  const gh = await startFakeGitHub();
  t.after(() => gh.close());
  gh.addRepo({ owner: 'acme', name: 'lab', private: true });
  gh.addToken({ token: TOKEN, login: 'lab-bot', repos: { 'acme/lab': 'push' } });
  gh.addRelease('acme/lab', {
    tag: 'v1',
    // Some big enough that a kill can land in the middle of a transfer.
    assets: Array.from({ length: WORKLOADS }, (_, i) => ({
      name: `w${String(i).padStart(2, '0')}.efi`,
      contentType: 'application/vnd.dispatch+efi',
      bytes: randomBytes(i % 3 === 0 ? 1024 * 1024 : 16 * 1024),
    })),
  });
  const state = await mkdtemp(join(tmpdir(), 'dispatch-fault-'));
  t.after(() => rm(state, { recursive: true, force: true }));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/dispatch`;
  const args = ['--owner', 'acme', '--repo', 'lab', '--tag', 'v1', '--api-url', gh.apiUrl, '--token', TOKEN, '--state-dir', state, '--bind', `127.0.0.1:${port}`, '--no-mdns', '--resume'];

  let output = '';
  let child: ChildProcess | undefined;
  t.after(() => void child?.kill('SIGKILL'));
  // FAULT_LOG=file keeps every dispatch's output, to see what went wrong.
  if (process.env.FAULT_LOG) t.after(() => writeFile(process.env.FAULT_LOG!, output));
  const start = async (): Promise<void> => {
    const from = output.length;
    child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { PATH: '/usr/bin:/bin', HOME: process.env.HOME }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (output += d));
    child.stderr!.on('data', (d: Buffer) => (output += d));
    for (let i = 0; !/listening on/.test(output.slice(from)); i += 1) {
      if (i > 400 || child.exitCode !== null) throw new Error(`dispatch did not start (exit ${child.exitCode}):\n${output.slice(from)}`);
      await delay(25);
    }
  };

  await start();
  let fleetDone = false;
  const fleet: Promise<FleetLog> = runFleet({
    url,
    // Workloads that run for a while, so kills land in every state.
    servers: Array.from({ length: SERVERS }, (_, i) => ({ then: { runMs: 600 + 300 * i } })),
    rebootOnError: 200,
    beaconRetries: 200,
    retryDelayMs: 100,
    requestTimeoutMs: 10_000,
    deadlineMs: 60_000,
  }).finally(() => (fleetDone = true));

  // Kill only while the fleet runs: a kill after it is done would test nothing.
  const kills: number[] = [];
  while (kills.length < KILLS && !fleetDone) {
    const afterMs = Math.round(20 + next() * 700);
    await delay(afterMs);
    if (fleetDone) break;
    kills.push(afterMs);
    child!.kill('SIGKILL');
    await once(child!, 'exit');
    await delay(Math.round(next() * 300));
    await start();
  }
  const log = await fleet;
  const fleetAt = Date.now();
  t.diagnostic(`killed after ${kills.map((ms) => `${ms} ms`).join(', ')} up; fleet ${Math.round(log.ms)} ms`);
  assert.ok(kills.length >= KILLS - 1, `at least ${KILLS - 1} kills landed while the fleet ran (${kills.length})`);

  // The servers saw a consistent dispatch: every one powered off, no protocol violation.
  for (const server of log.servers) {
    assert.equal(server.stopped, 'poweroff', `${server.ip} stopped: ${server.stopped} ${server.error ?? ''}`);
    assert.deepEqual(server.violations, [], `${server.ip} saw no protocol violation`);
  }
  assert.deepEqual(overlappingRuns(log), [], 'no workload ran on two servers at once');

  // Every job ends final, and nothing is left in the outbox.
  const origin = `http://127.0.0.1:${port}`;
  let jobs = await apiJobs(origin, 5_000);
  // Bounded by the filing pace: 3 s per issue.
  for (let i = 0; i < 600 && !jobs.every((j) => j.state === 'finished' || j.state === 'failed'); i += 1) {
    await delay(100);
    jobs = await apiJobs(origin, 5_000);
  }
  assert.equal(jobs.length, WORKLOADS);
  for (const job of jobs) assert.ok(job.state === 'finished' || job.state === 'failed', `${job.name} is ${job.state}`);
  const outbox = join(state, 'outbox');
  const pending = async () => (await readdir(outbox, { recursive: true })).filter((n) => /^[^/]+\/[^/]+\/[^/]+\/[0-9a-f-]+\.json$/.test(n));
  for (let i = 0; i < 100 && (await pending()).length > 0; i += 1) await delay(100);
  assert.deepEqual(await pending(), [], 'the outbox is empty');

  // Every PUT that got 200 is exactly one issue; a copy never acknowledged is at most one.
  const sent = log.servers.flatMap((s) => s.boots.flatMap((b) => b.reports));
  const acknowledged = sent.filter((r) => r.status === 200);
  assert.ok(acknowledged.length >= WORKLOADS / 2, `most workloads reported (${acknowledged.length})`);
  const issues = gh.issues('acme/lab');
  for (const report of sent) {
    const count = issues.filter((i) => i.title === report.title).length;
    if (report.status === 200) assert.equal(count, 1, `acknowledged ${JSON.stringify(report.title)} filed exactly once`);
    else assert.ok(count <= 1, `unacknowledged ${JSON.stringify(report.title)} (${report.status}) filed at most once`);
  }
  // Each issue is one stored filing: its hidden marker appears once in the repository.
  const markers = issues.map((i) => /<!-- dispatch:report:([0-9a-f-]{36}) -->/.exec(i.body ?? '')?.[1]);
  assert.ok(markers.every((m) => m !== undefined), 'every issue carries its marker');
  assert.equal(new Set(markers).size, issues.length, 'no filing became two issues');
  const titles = new Set(sent.map((r) => r.title));
  for (const issue of issues) {
    assert.ok(titles.has(issue.title) || / failed on /.test(issue.title), `issue ${JSON.stringify(issue.title)} is a report or a failure`);
  }
  // Each job's reports on the API are issues that exist, and every finished job has one.
  for (const job of jobs) {
    if (job.state === 'finished') assert.ok(job.reports.length >= 1, `${job.name} lists its report`);
    for (const ref of job.reports) assert.ok(issues.some((i) => ref.endsWith(`/issues/${i.number}`)), `${job.name}'s ${ref} exists`);
  }
  const failed = jobs.filter((j) => j.state === 'failed');
  t.diagnostic(`checks took ${Date.now() - fleetAt} ms`);
  t.diagnostic(`${acknowledged.length} acknowledged of ${sent.length} sent; ${issues.length} issues; ${failed.length} failed job(s)${failed.map((j) => ` ${j.name}: ${j.reason}`).join(';')}; ${log.servers.reduce((n, s) => n + s.restarts, 0)} firmware restarts`);

  const t0 = Date.now();
  child!.kill('SIGTERM');
  const [code] = (await once(child!, 'exit')) as [number | null];
  t.diagnostic(`SIGTERM to exit ${Date.now() - t0} ms`);
  assert.equal(code, 0);
  assert.ok(!output.includes(TOKEN), 'the token never appears in the output');
});
