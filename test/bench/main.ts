import { randomFillSync } from 'node:crypto';
import { link, mkdir, mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startFakeGitHub } from '../github/fake.ts';
import { loopbackAddress } from '../fleet/simulator.ts';
import { curlAll, type Downloads } from './curl.ts';
import { CALLS, startFleetClient, type FleetClientConfig, type FleetClientResult } from './fleet-client.ts';
import { startProbe } from './probe.ts';
import { cpuOf, cpuSplitOf, mainThreadCpuOf, freePort, nginxAvailable, startDispatchCli, startFloor, startNginx, threadsOf, type Spawned } from './processes.ts';

/**
 * `npm run bench [-- --quick] [--only throughput,memory,fleet,cache] [--clients 1,4,16] [--fleet-spread 0,5000,20000|none] [--fleet-tui 5000|none] [--cpu-prof DIR]`
 *
 * Prints figures, asserts none (DESIGN §12). Every figure of a section is
 * measured side by side in one run, so ratios hold even on a busy machine.
 * dispatch is the built CLI in a process of its own; clients are other
 * processes too: curl, and the lean fleet client (fleet-client.ts).
 */

const flags = (() => {
  try {
    return parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        'cpu-prof': { type: 'string' },
        clients: { type: 'string' },
        'fleet-spread': { type: 'string' },
        'fleet-tui': { type: 'string' },
      },
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: npm run bench [-- --quick] [--only throughput,memory,fleet,cache] [--clients 1,4,16] [--fleet-spread 0,5000,20000|none] [--fleet-tui 5000|none] [--cpu-prof DIR]`);
    process.exit(2);
  }
})();
const quick = flags.quick!;

/** A comma-separated list of whole numbers, each at least `min`; anything else stops the bench with a clear error. */
function numberList(flag: string, text: string, min: number): number[] {
  const values = text.split(',').map((part) => (/^\d+$/.test(part.trim()) ? Number(part) : NaN));
  if (values.some((value) => !Number.isSafeInteger(value) || value < min)) {
    console.error(`${flag} takes whole numbers of at least ${min}, separated by commas, not ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return values;
}
const SECTIONS = ['throughput', 'memory', 'fleet', 'cache'];
const sections = new Set((flags.only ?? SECTIONS.join(',')).split(','));
for (const section of sections) {
  if (!SECTIONS.includes(section)) {
    console.error(`--only takes sections among ${SECTIONS.join(', ')} (separated by commas), not ${JSON.stringify(section)}`);
    process.exit(2);
  }
}
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SIZE = quick ? 256 * MiB : GiB;
const CLIENTS = numberList('--clients', flags.clients ?? (quick ? '1,4' : '1,4,16'), 1);
/** Rounds per throughput figure: the machine may be shared, and a median of alternating rounds is steadier than one. */
const REPEATS = quick ? 1 : 3;
const MEMORY_CLIENTS = quick ? 8 : 32;
const FLEET = quick ? 200 : 1000;
const FLEET_WORKLOAD = 64 * 1024;
/** Power-on spreads of the fleet runs, ms: 0 is every server in the same instant. */
const FLEET_SPREADS = flags['fleet-spread'] === 'none' ? [] : numberList('--fleet-spread', flags['fleet-spread'] ?? (quick ? '0' : '0,5000,20000'), 0);
/** Power-on spreads of the fleet runs made again with dispatch drawing its TUI on a terminal. */
const FLEET_TUI_SPREADS = flags['fleet-tui'] === 'none' ? [] : numberList('--fleet-tui', flags['fleet-tui'] ?? (quick ? '0' : '5000'), 0);
/** The terminal of those runs: a big one, the costliest for ink to draw. */
const TUI_TERMINAL = { columns: 160, rows: 50 };
/** A simulated reboot lasts the power-on spread plus this, ms (see FleetClientConfig.rebootMs). */
const FLEET_REBOOT_MARGIN_MS = 5_000;
const CACHE_SERVERS = 20;
const CACHE_SIZE = quick ? 16 * MiB : 64 * MiB;
/** curl gives up after this long: a bench that hangs is no bench. */
const CURL_TIMEOUT_S = 300;
const nodeFlags = flags['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', flags['cpu-prof']] : [];

/** Every simulated client gets an address no other client of this run used (dispatch tells servers apart by address). */
let nextAddress = 0;
const addresses = (n: number) => Array.from({ length: n }, () => loopbackAddress(nextAddress++));

const scratch = await mkdtemp(join(tmpdir(), 'dispatch-bench-'));
const running = new Set<Spawned>();
const own = <T extends Spawned>(p: T): T => (running.add(p), p);
const release = async (p: Spawned) => {
  running.delete(p);
  await p.stop();
};
let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  void cleanup().then(() => process.exit(130));
});

async function cleanup() {
  for (const p of [...running]) await release(p);
  await rm(scratch, { recursive: true, force: true });
}

const mib = (bytes: number) => bytes / MiB;
const fmt = (n: number, digits = 0) => n.toFixed(digits);
const rate = (d: Downloads) => mib(d.bytes) / (d.ms / 1000);
const mb = (bytes: number) => `${fmt(bytes / 1e6)} MB`;

/**
 * Random bytes (not sparse, not compressible), written in 16 MiB pieces and
 * synced: otherwise the kernel writes the dirty pages back 30 s later
 * (vm.dirty_expire_centisecs), in the middle of the throughput rounds, and
 * takes CPU from whichever server runs then (measured: 1 GiB dirty until
 * the 4-client rounds).
 */
async function makeFile(path: string, size: number): Promise<void> {
  const handle = await open(path, 'w');
  const chunk = Buffer.allocUnsafe(16 * MiB);
  try {
    for (let at = 0; at < size; at += chunk.byteLength) {
      const length = Math.min(chunk.byteLength, size - at);
      randomFillSync(chunk, 0, length);
      await handle.write(chunk, 0, length, at);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `count` workloads that are all the same file: hard links, so one inode and one page cache. */
async function workloadDir(name: string, file: string, count: number, extension: string): Promise<string> {
  const dir = join(scratch, name);
  await mkdir(dir);
  for (let i = 0; i < count; i += 1) await link(file, join(dir, `w${String(i).padStart(4, '0')}.${extension}`));
  return dir;
}

function failures(d: Downloads, size: number): string {
  const bad = d.results.filter((r) => r.status !== 200 || r.bytes !== size || r.error);
  return bad.length === 0 ? '' : `  ERRORS: ${bad.length} (${bad.map((r) => r.error ?? `${r.status} ${r.bytes} bytes`).slice(0, 3).join('; ')})`;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function throughput(big: string) {
  console.log(`\n## throughput: ${CLIENTS.join(', ')} concurrent clients, each downloading ${fmt(mib(SIZE))} MiB (curl -s -o /dev/null processes, one 127.x.y.z source address each)`);
  if (REPEATS > 1) console.log(`each figure: median of ${REPEATS} rounds, dispatch and nginx alternating (which goes first swaps every round)`);
  const total = CLIENTS.reduce((a, b) => a + b, 0) * REPEATS;
  // Each client is a new server to dispatch, so it is handed the next job: every job is the same file.
  const dir = await workloadDir('throughput', big, total, 'img');
  const dispatch = own(await startDispatchCli({ home: join(scratch, 'dispatch-throughput'), port: await freePort(), args: ['--dir', dir], nodeFlags }));
  const hasNginx = nginxAvailable();
  const nginx = hasNginx ? own(await startNginx(join(scratch, 'nginx'), dir, await freePort())) : undefined;
  if (!nginx) console.log('nginx not found at /usr/sbin/nginx: comparison skipped (install it with `apt-get install nginx`)');
  // CPU time per GiB served says what each server costs even when the machine is busy with other work.
  const timed = async (server: Spawned, url: string, n: number) => {
    const before = await cpuOf(server.pid);
    const mainBefore = await mainThreadCpuOf(server.pid);
    const downloads = await curlAll(Array(n).fill(url), addresses(n), CURL_TIMEOUT_S);
    const gib = downloads.bytes / GiB;
    return { rate: rate(downloads), cpuPerGiB: ((await cpuOf(server.pid)) - before) / gib, mainPerGiB: ((await mainThreadCpuOf(server.pid)) - mainBefore) / gib, errors: failures(downloads, SIZE) };
  };
  type Round = Awaited<ReturnType<typeof timed>>;
  const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log('clients  dispatch MiB/s  nginx MiB/s  dispatch/nginx  CPU ms/GiB: dispatch  nginx');
  for (const n of CLIENTS) {
    const d: Round[] = [];
    const x: Round[] = [];
    for (let round = 0; round < REPEATS; round += 1) {
      if (nginx && round % 2 === 1) x.push(await timed(nginx, `${nginx.origin}/w0000.img`, n));
      d.push(await timed(dispatch, dispatch.url, n));
      if (nginx && round % 2 === 0) x.push(await timed(nginx, `${nginx.origin}/w0000.img`, n));
    }
    const dRate = median(d.map((r) => r.rate));
    const xRate = x.length > 0 ? median(x.map((r) => r.rate)) : undefined;
    const errors = [...d, ...x].map((r) => r.errors).join('');
    console.log(
      `${String(n).padStart(7)}  ${fmt(dRate).padStart(14)}  ${(xRate ? fmt(xRate) : '-').padStart(11)}  ${(xRate ? fmt(dRate / xRate, 2) : '-').padStart(14)}  ${fmt(median(d.map((r) => r.cpuPerGiB))).padStart(20)}  ${(x.length > 0 ? fmt(median(x.map((r) => r.cpuPerGiB))) : '-').padStart(5)}${errors}`,
    );
    if (REPEATS > 1) console.log(`         rounds: dispatch ${d.map((r) => fmt(r.rate)).join(' ')}${x.length > 0 ? `; nginx ${x.map((r) => fmt(r.rate)).join(' ')}` : ''}`);
    // The rest of dispatch's CPU is libuv's threads (file reads, and socket writes when several downloads run) and the kernel on their behalf.
    console.log(`         dispatch's JavaScript thread: ${fmt(median(d.map((r) => r.mainPerGiB)))} CPU ms/GiB`);
  }
  const peak = await dispatch.peak();
  console.log(`dispatch peak RSS during throughput: ${mb(Math.max(peak.sampled, peak.hwm))}${nginx ? `; nginx worker: ${mb((await nginx.peak()).hwm)}` : ''}`);
  await release(dispatch);
  if (nginx) await release(nginx);
}

async function memory(big: string) {
  console.log(`\n## memory: ${MEMORY_CLIENTS} clients downloading ${fmt(mib(SIZE))} MiB each at once`);
  const dir = await workloadDir('memory', big, MEMORY_CLIENTS, 'img');
  const dispatch = own(await startDispatchCli({ home: join(scratch, 'dispatch-memory'), port: await freePort(), args: ['--dir', dir], nodeFlags }));
  const idle = await dispatch.peak();
  const d = await curlAll(Array(MEMORY_CLIENTS).fill(dispatch.url), addresses(MEMORY_CLIENTS), CURL_TIMEOUT_S);
  const peak = await dispatch.peak();
  console.log(`dispatch RSS idle ${mb(idle.hwm)}, peak ${mb(Math.max(peak.sampled, peak.hwm))} (VmHWM ${mb(peak.hwm)}, largest VmRSS sample ${mb(peak.sampled)}); ${fmt(rate(d))} MiB/s aggregate${failures(d, SIZE)}`);
  await release(dispatch);
}

/** CPU ms used so far by the threads of dispatch that run below its main thread's priority: the TUI's drawing thread (worker.tsx). */
async function drawingThreadCpuOf(pid: number): Promise<number> {
  const threads = await threadsOf(pid);
  const main = threads.find((thread) => thread.tid === pid);
  return threads.filter((thread) => main !== undefined && thread.nice > main.nice).reduce((sum, thread) => sum + thread.cpuMs, 0);
}

async function fleet(spreadMs: number, options: { readonly tui?: boolean } = {}) {
  const when = spreadMs === 0 ? 'all in the same instant' : `powered on within ${fmt(spreadMs / 1000, 1)} s of each other`;
  const drawing = options.tui ? `, dispatch drawing its TUI on a ${TUI_TERMINAL.columns}x${TUI_TERMINAL.rows} pseudo-terminal` : '';
  console.log(`\n## fleet: ${FLEET} simulated servers ${when} (each its own 127.x.y.z), full protocol: HEAD, GET ${FLEET_WORKLOAD / 1024} KiB, POST, PUT, reboot, HEAD+GET poweroff.efi${drawing}`);
  const file = join(scratch, 'small.efi');
  await makeFile(file, FLEET_WORKLOAD);
  const name = `fleet-${spreadMs}${options.tui ? '-tui' : ''}`;
  const dir = await workloadDir(name, file, FLEET, 'efi');
  const home = join(scratch, `dispatch-${name}`);
  const poweroffPath = new URL('../../efi/poweroff.efi', import.meta.url).pathname;
  const poweroffSize = (await stat(poweroffPath)).size;
  // Every server has claimed its workload before the first one comes back from its reboot, as in a lab (a server takes a minute or more to reboot): each runs one workload, then boots poweroff.efi.
  const rebootMs = spreadMs + FLEET_REBOOT_MARGIN_MS;
  const config = (url: string) => ({ url, servers: FLEET, firstAddress: (nextAddress += FLEET) - FLEET, startSpreadMs: spreadMs, timeoutMs: 10_000, deadlineMs: 120_000 + spreadMs + rebootMs, poweroffSize, maxBoots: 100, rebootMs });
  // The floor first: the same client against a bare server, so each dispatch figure has its floor beside it.
  const floorServer = own(await startFloor(await freePort(), file, poweroffPath));
  const floor = await referenceRun(floorServer, config(floorServer.url));
  // Then nginx answering the same calls from its config: what a native server does on this machine. It keeps no
  // state, so it never hands out poweroff.efi: its servers run one boot (HEAD, GET, POST, PUT) and stop there.
  const nginxServer = nginxAvailable() ? own(await startNginx(join(scratch, `nginx-${name}`), scratch, await freePort(), { path: '/dispatch', file: 'small.efi' })) : undefined;
  const nginx = nginxServer && (await referenceRun(nginxServer, { ...config(`${nginxServer.origin}/dispatch`), maxBoots: 1 }));
  const dispatch = own(await startDispatchCli({ home, port: await freePort(), args: ['--dir', dir], nodeFlags, ...(options.tui ? { terminal: TUI_TERMINAL } : {}) }));
  // Loaded before any baseline: its start-up is not in the figures.
  const client = await startFleetClient(nodeFlags);
  try {
    const probe = startProbe(dispatch.origin);
    const cpuBefore = await cpuSplitOf(dispatch.pid);
    const mainBefore = await mainThreadCpuOf(dispatch.pid);
    const drawingBefore = await drawingThreadCpuOf(dispatch.pid);
    const run = await client.run(config(dispatch.url));
    const main = (await mainThreadCpuOf(dispatch.pid)) - mainBefore;
    const drawing = (await drawingThreadCpuOf(dispatch.pid)) - drawingBefore;
    const cpu = cpuSince(await cpuSplitOf(dispatch.pid), cpuBefore);
    const probed = (await probe.stop()).sort((a, b) => a - b);
    const peak = await dispatch.peak();
    const reports = (await readdir(join(home, 'reports')).catch(() => [])).filter((n) => n.endsWith('.md')).length;
    console.log(`wall ${fmt(run.wallMs)} ms (each server's reboot, ${fmt(rebootMs)} ms, included), ${run.requests} requests, errors ${run.errors}, servers not powered off ${run.unfinished}, protocol violations ${run.violations.length}, reports on disk ${reports}`);
    console.log(`servers by workloads run: ${workloadsRun(run.workloads)} (the floor: ${workloadsRun(floor.run.workloads)})`);
    for (const sample of [...run.errorExamples, ...run.unfinishedExamples, ...run.violations].slice(0, 5)) console.log(`  e.g. ${sample}`);
    if (run.errors > 0) {
      // What dispatch logged about its failures says more than a status does (a 500 is logged with its cause).
      const said = (await readFile(dispatch.log, 'utf8')).split('\n').filter((line) => / failed: |\bcannot\b/.test(line));
      if (said.length > 0) console.log(`  dispatch logged ${said.length} lines of failure, e.g.`);
      for (const line of said.slice(0, 3)) console.log(`    ${line.slice(0, 240)}`);
    }
    console.log("each call timed from writing its request to the last byte of its answer; connect: the TCP handshake before a connection's first request");
    const cpuText = ({ user, system }: Cpu) => `CPU ${fmt(user + system)} ms (user ${fmt(user)}, system ${fmt(system)})`;
    console.log(`floor: the same client against a bare node:http server that only answers (test/bench/floor.ts), just before: wall ${fmt(floor.run.wallMs)} ms, errors ${floor.run.errors}, ${cpuText(floor.cpu)}`);
    if (nginx) {
      console.log(
        `nginx: the same client against nginx answering the same calls from its config (one worker, as in throughput), just before: wall ${fmt(nginx.run.wallMs)} ms, errors ${nginx.run.errors}, ${cpuText(nginx.cpu)}; one boot per server, no poweroff.efi, so its HEAD and GET rows hold ${nginx.run.ms.HEAD.length} calls`,
      );
    } else console.log('nginx not found at /usr/sbin/nginx: its column is left out (install it with `apt-get install nginx`)');
    console.log(`call     count   p50 ms   p99 ms   max ms   | floor p50   p99 ms${nginx ? '   | nginx p50   p99 ms' : ''}`);
    const sorted = (values: readonly number[]) => [...values].sort((a, b) => a - b);
    const p50p99 = (values: readonly number[]) => `${fmt(percentile(values, 50), 1).padStart(9)}  ${fmt(percentile(values, 99), 1).padStart(7)}`;
    for (const call of CALLS) {
      const ms = sorted(run.ms[call]);
      console.log(
        `${call.padEnd(7)}  ${String(ms.length).padStart(5)}  ${fmt(percentile(ms, 50), 1).padStart(7)}  ${fmt(percentile(ms, 99), 1).padStart(7)}  ${fmt(ms.at(-1) ?? NaN, 1).padStart(7)}   | ${p50p99(sorted(floor.run.ms[call]))}${nginx ? `   | ${p50p99(sorted(nginx.run.ms[call]))}` : ''}`,
      );
    }
    console.log(
      `meanwhile a lean probe in its own process (GET of an unknown path, fresh connection, every 20 ms): ${probed.length} answers, p50 ${fmt(percentile(probed, 50), 1)} ms, p99 ${fmt(percentile(probed, 99), 1)} ms, max ${fmt(probed.at(-1) ?? NaN, 1)} ms`,
    );
    const late = run.loopDelayMs;
    console.log(
      `dispatch peak RSS ${mb(Math.max(peak.sampled, peak.hwm))}; CPU used: dispatch ${fmt(cpu.user + cpu.system)} ms (user ${fmt(cpu.user)}, system ${fmt(cpu.system)}; its JavaScript thread ${fmt(main)}${options.tui ? `, its drawing thread ${fmt(drawing)}` : ''}), the fleet client (a process of its own) ${fmt(run.cpuMs.user + run.cpuMs.system)} ms (user ${fmt(run.cpuMs.user)}, system ${fmt(run.cpuMs.system)}), whose event loop was late by p50 ${fmt(late.p50, 1)} / p99 ${fmt(late.p99, 1)} / max ${fmt(late.max, 1)} ms (included in the latencies); client RSS ${mb(run.rss.start)} at the start, peak ${mb(run.rss.peak)}`,
    );
  } finally {
    await client.stop();
    await release(dispatch);
  }
}

type Cpu = { readonly user: number; readonly system: number };

function cpuSince(now: Cpu, before: Cpu): Cpu {
  return { user: now.user - before.user, system: now.system - before.system };
}

/** A fleet client (one fleet each) against a reference server, then the server stopped: the run, and the server's CPU during it. */
async function referenceRun(server: Spawned, config: FleetClientConfig): Promise<{ run: FleetClientResult; cpu: Cpu }> {
  const client = await startFleetClient();
  const before = await cpuSplitOf(server.pid);
  let cpu: Cpu = { user: NaN, system: NaN };
  const run = await client.run(config).finally(async () => {
    cpu = cpuSince(await cpuSplitOf(server.pid), before);
    await client.stop();
    await release(server);
  });
  return { run, cpu };
}

/** `{ "1": 998, "2": 2 }` as "1 each: 998, 2 each: 2". */
function workloadsRun(servers: Readonly<Record<string, number>>): string {
  return Object.entries(servers)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([ran, count]) => `${ran} each: ${count}`)
    .join(', ');
}

async function cache() {
  console.log(`\n## cache: ${CACHE_SERVERS} servers at once booting the same ${fmt(mib(CACHE_SIZE))} MiB release asset from the fake GitHub (one asset per server, same bytes, same digest)`);
  const file = join(scratch, 'asset.efi');
  await makeFile(file, CACHE_SIZE);
  const fake = await startFakeGitHub();
  try {
    const token = 'ghp_dispatchBenchToken000000000000000000';
    fake.addRepo({ owner: 'acme', name: 'lab' });
    fake.addToken({ token, login: 'acme' });
    fake.addRelease('acme/lab', {
      tag: 'v1',
      assets: Array.from({ length: CACHE_SERVERS }, (_, i) => ({ name: `memtest-${String(i).padStart(2, '0')}.efi`, contentType: 'application/vnd.dispatch+efi', path: file })),
    });
    // The same dispatch twice over one state folder: cold, then on its cache.
    const startCached = async () =>
      own(
        await startDispatchCli({
          home: join(scratch, 'dispatch-cache'),
          port: await freePort(),
          args: ['--owner', 'acme', '--repo', 'lab', '--tag', 'v1', '--api-url', fake.apiUrl],
          env: { GITHUB_TOKEN: token },
          nodeFlags,
        }),
      );
    const dispatch = await startCached();
    const startedAt = Date.now();
    const d = await curlAll(Array(CACHE_SERVERS).fill(dispatch.url), addresses(CACHE_SERVERS), CURL_TIMEOUT_S);
    // When the upstream download ended, from dispatch's own log line.
    const verified = /^(\S+)\s+cache\s+.*downloaded and verified/m.exec(await readFile(dispatch.log, 'utf8'))?.[1];
    const upstreamMs = verified ? Date.parse(verified) - startedAt : NaN;
    const blobs = fake.requestsTo('bytes').length;
    const api = fake.requestsTo('api').filter((r) => /\/releases\/assets\/\d+$/.test(r.path)).length;
    console.log(`upstream downloads ${blobs} (asset API requests ${api}); time to last byte ${fmt(d.ms)} ms for all ${CACHE_SERVERS} (the upstream download ended at ${fmt(upstreamMs)} ms, the first server done at ${fmt(Math.min(...d.results.map((r) => r.ms)))} ms); ${fmt(rate(d))} MiB/s aggregate${failures(d, CACHE_SIZE)}`);
    await release(dispatch);
    // Cached now: the same ${CACHE_SERVERS} downloads again, from disk, for comparison.
    const warm = await startCached();
    const again = await curlAll(Array(CACHE_SERVERS).fill(warm.url), addresses(CACHE_SERVERS), CURL_TIMEOUT_S);
    console.log(`restarted on the same cache: upstream downloads ${fake.requestsTo('bytes').length - blobs} more; time to last byte ${fmt(again.ms)} ms${failures(again, CACHE_SIZE)}`);
    await release(warm);
  } finally {
    await fake.close();
  }
}

try {
  console.log(`# dispatch bench${quick ? ' (--quick)' : ''}: Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), loopback; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at the start`);
  let big: string | undefined;
  if (sections.has('throughput') || sections.has('memory')) {
    big = join(scratch, 'big.img');
    const t = Date.now();
    await makeFile(big, SIZE);
    console.log(`(made and synced a ${fmt(mib(SIZE))} MiB file of random bytes in ${Date.now() - t} ms)`);
  }
  if (sections.has('throughput') && !interrupted) await throughput(big!);
  if (sections.has('memory') && !interrupted) await memory(big!);
  for (const spread of FLEET_SPREADS) if (sections.has('fleet') && !interrupted) await fleet(spread);
  for (const spread of FLEET_TUI_SPREADS) if (sections.has('fleet') && !interrupted) await fleet(spread, { tui: true });
  if (sections.has('cache') && !interrupted) await cache();
} finally {
  await cleanup();
}
