import net from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { BOOT_TYPES, FIRMWARE_HEADERS } from '../fleet/http.ts';
import { loopbackAddress } from '../fleet/simulator.ts';
import { CALLS, type Call, type FleetClientConfig, type FleetClientResult } from './fleet-client.ts';
import { AnswerParser, request, type Answer } from './wire.ts';

/**
 * The fleet client's process (started by fleet-client.ts): says `ready`,
 * reads its config as one JSON line on stdin, runs the fleet, writes the
 * result as one JSON line on stdout, and exits when stdin closes.
 *
 * Each server does what the simulator in test/fleet does, on the same
 * connections, with the same request bytes, and nothing more: per boot, the
 * firmware's HEAD and GET on one keep-alive connection (EDK2 HttpBootDxe),
 * then `beacon boot` (POST) and `beacon report` (PUT) on another, then a
 * reboot that drops both; until the download is poweroff.efi. No HTTP
 * library, no hashing, no body kept: the client's cost stays small next to
 * dispatch's, and what it still costs is reported with the figures.
 */

/** What the simulator's beacon sends (`beacon` itself sends its own name); only a report has a body type. */
const BEACON_HEADERS: Readonly<Record<string, string>> = { 'User-Agent': 'beacon-sim' };
const REPORT_HEADERS: Readonly<Record<string, string>> = { ...BEACON_HEADERS, 'Content-Type': 'application/json' };
/** monitorEventLoopDelay's interval; what it records is the interval plus the lateness. */
const LOOP_RESOLUTION_MS = 5;
const MAX_EXAMPLES = 10;
/** Servers started per turn of the event loop (see main). */
const START_BATCH = 50;
/**
 * Every socket reads into this one buffer (nothing is kept from it past the
 * read): a thousand 64 KiB downloads allocate nothing, so the client's
 * garbage collector stays out of the latencies.
 */
const READ_BUFFER = Buffer.alloc(64 * 1024);

class CallError extends Error {
  override readonly name = 'CallError';
}

/** What the whole run shares: the target, the tallies, the open connections (closed at the deadline). */
class Run {
  readonly url: URL;
  readonly ms: Record<Call, number[]> = Object.fromEntries(CALLS.map((call) => [call, []])) as unknown as Record<Call, number[]>;
  readonly open = new Set<Connection>();
  readonly errorExamples: string[] = [];
  readonly unfinishedExamples: string[] = [];
  readonly violations: string[] = [];
  readonly workloads: Record<string, number> = {};
  requests = 0;
  errors = 0;
  unfinished = 0;
  over = false;

  constructor(readonly config: FleetClientConfig) {
    this.url = new URL(config.url);
  }

  error(ip: string, what: string): void {
    this.errors += 1;
    if (this.errorExamples.length < MAX_EXAMPLES) this.errorExamples.push(`${ip}: ${what}`);
  }

  stopped(ip: string, why: string): void {
    this.unfinished += 1;
    if (this.unfinishedExamples.length < MAX_EXAMPLES) this.unfinishedExamples.push(`${ip}: ${why}`);
  }

  end(): void {
    this.over = true;
    for (const connection of this.open) connection.close(new CallError('the run ended (deadline)'));
  }
}

interface Pending {
  readonly call: Call;
  readonly parser: AnswerParser;
  readonly started: number;
  readonly resolve: (answer: Answer) => void;
  readonly reject: (err: Error) => void;
}

/** One keep-alive connection from one server's address, opened at its first call, opened again if dispatch closed it. */
class Connection {
  #socket: net.Socket | undefined;
  /** Rejects the connect under way. */
  #connecting: ((err: Error) => void) | undefined;
  #pending: Pending | undefined;

  constructor(
    readonly ip: string,
    readonly run: Run,
  ) {}

  async call(call: Exclude<Call, 'connect'>, bytes: Buffer): Promise<Answer> {
    if (this.run.over) throw new CallError('the run ended (deadline)');
    const socket = this.#socket ?? (await this.#connect());
    return new Promise<Answer>((resolve, reject) => {
      this.#pending = { call, parser: new AnswerParser(call), started: performance.now(), resolve, reject };
      this.run.requests += 1;
      socket.write(bytes);
    });
  }

  /** Drop the connection; a connect or call under way fails with `err`. */
  close(err?: Error): void {
    const socket = this.#socket;
    const connecting = this.#connecting;
    const pending = this.#pending;
    this.#socket = undefined;
    this.#connecting = undefined;
    this.#pending = undefined;
    this.run.open.delete(this);
    socket?.destroy();
    // An error only when someone waits for it: its stack trace is not free, and every boot closes two connections.
    if (connecting || pending) {
      const why = err ?? new CallError('connection closed');
      connecting?.(why);
      pending?.reject(why);
    }
  }

  #connect(): Promise<net.Socket> {
    const { hostname, port } = this.run.url;
    const { timeoutMs } = this.run.config;
    const started = performance.now();
    // Events of a socket this connection has already dropped are old news.
    const mine = () => this.#socket === socket;
    const socket = net.connect({
      host: hostname,
      port: Number(port),
      localAddress: this.ip,
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (bytes) => {
          if (mine()) this.#data(READ_BUFFER.subarray(0, bytes));
          return true;
        },
      },
    });
    this.#socket = socket;
    this.run.open.add(this);
    socket.setTimeout(timeoutMs, () => {
      if (!mine()) return;
      const what = this.#connecting ? 'connect' : this.#pending?.call;
      this.close(what ? new CallError(`${what}: nothing for ${timeoutMs} ms`) : undefined);
    });
    socket.on('error', (err) => {
      if (mine()) this.close(err);
    });
    socket.on('close', () => {
      if (!mine()) return;
      const what = this.#connecting ? 'connect' : this.#pending?.call;
      this.close(new CallError(what ? `${what}: connection closed before the answer was complete` : 'connection closed'));
    });
    return new Promise((resolve, reject) => {
      this.#connecting = reject;
      socket.once('connect', () => {
        if (!mine()) return;
        this.#connecting = undefined;
        this.run.ms.connect.push(performance.now() - started);
        resolve(socket);
      });
    });
  }

  #data(chunk: Buffer): void {
    const pending = this.#pending;
    if (!pending) {
      this.close(new CallError(`${chunk.byteLength} bytes nobody asked for`));
      return;
    }
    let done;
    try {
      done = pending.parser.feed(chunk);
    } catch (err) {
      this.close(new CallError(`${pending.call}: ${(err as Error).message}`));
      return;
    }
    if (!done) return;
    this.run.ms[pending.call].push(performance.now() - pending.started);
    this.#pending = undefined;
    if (done.rest.byteLength > 0) this.run.violations.push(`${this.ip}: ${done.rest.byteLength} bytes after the answer to ${pending.call}`);
    // The next call on this connection opens a new one, as a keep-alive agent would.
    if (done.answer.close || done.rest.byteLength > 0) this.close();
    pending.resolve(done.answer);
  }
}

const ok = (answer: Answer) => answer.status >= 200 && answer.status < 300;

/** One server, booting until it is handed poweroff.efi. */
async function server(run: Run, index: number): Promise<void> {
  const ip = loopbackAddress(run.config.firstAddress + index);
  const spread = run.config.startSpreadMs;
  if (spread > 0) await delay(Math.random() * spread);
  const firmwareRequest = request('HEAD', run.url, FIRMWARE_HEADERS);
  const downloadRequest = request('GET', run.url, FIRMWARE_HEADERS);
  const bootRequest = request('POST', run.url, BEACON_HEADERS);
  let ran = 0;
  const tally = (): void => {
    run.workloads[ran] = (run.workloads[ran] ?? 0) + 1;
  };
  for (let boot = 0; boot < run.config.maxBoots; boot += 1) {
    // A reboot: whatever the previous boot left open is gone, as on real hardware, and the firmware takes its time to come back.
    if (boot > 0) await delay(run.config.rebootMs);
    if (run.over) break;
    const firmware = new Connection(ip, run);
    const beacon = new Connection(ip, run);
    try {
      const head = await firmware.call('HEAD', firmwareRequest);
      if (!ok(head)) throw new CallError(`HEAD got ${head.status}`);
      const get = await firmware.call('GET', downloadRequest);
      if (!ok(get)) throw new CallError(`GET got ${get.status}`);
      if (get.contentLength !== head.contentLength) run.violations.push(`${ip}: GET Content-Length ${get.contentLength} differs from HEAD's ${head.contentLength}`);
      if (get.contentType !== head.contentType) run.violations.push(`${ip}: GET Content-Type ${get.contentType} differs from HEAD's ${head.contentType}`);
      if (get.contentType === undefined || !BOOT_TYPES.includes(get.contentType)) run.violations.push(`${ip}: GET Content-Type ${JSON.stringify(get.contentType)} is not a bare UEFI boot type`);
      if (get.bodyBytes === run.config.poweroffSize) return tally();
      ran += 1;
      // The workload runs: beacon talks over its own connection, as a booted OS would.
      const posted = await beacon.call('POST', bootRequest).catch((err: Error) => err);
      if (posted instanceof Error || !ok(posted)) run.error(ip, posted instanceof Error ? posted.message : `POST got ${posted.status}`);
      const report = Buffer.from(JSON.stringify({ title: `boot ${boot} on ${ip}`, body: `downloaded ${get.bodyBytes} bytes\n`, labels: ['fleet'] }));
      const put = await beacon.call('PUT', request('PUT', run.url, REPORT_HEADERS, report)).catch((err: Error) => err);
      if (put instanceof Error || !ok(put)) run.error(ip, put instanceof Error ? put.message : `PUT got ${put.status}`);
    } catch (err) {
      // The firmware's HEAD or GET failed: the server stops here, as the simulator's does.
      const what = err instanceof Error ? err.message : String(err);
      run.error(ip, what);
      run.stopped(ip, `boot ${boot}: ${what}`);
      return tally();
    } finally {
      firmware.close();
      beacon.close();
    }
  }
  tally();
  run.stopped(ip, run.over ? 'the run ended (deadline)' : `still booting workloads after ${run.config.maxBoots} boots`);
}

function percentileMs(histogram: ReturnType<typeof monitorEventLoopDelay>, p: number): number {
  return Math.max(0, histogram.percentile(p) / 1e6 - LOOP_RESOLUTION_MS);
}

async function main(): Promise<void> {
  process.stdout.write('ready\n');
  const lines = createInterface({ input: process.stdin });
  const line = await lines[Symbol.asyncIterator]().next();
  if (line.done) return;
  // The bench closes stdin to stop this client, or it died: either way, stop, even mid-run.
  lines.once('close', () => process.exit(0));
  const run = new Run(JSON.parse(line.value) as FleetClientConfig);
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const rssAtStart = process.memoryUsage.rss();
  const cpu = process.cpuUsage();
  const deadline = setTimeout(() => run.end(), run.config.deadlineMs);
  const started = performance.now();
  const servers: Array<Promise<void>> = [];
  for (let i = 0; i < run.config.servers; i += 1) {
    servers.push(server(run, i));
    // Opening a connection costs the client ~0.1 ms: a thousand in one go would hold its event loop
    // for 100 ms while the first answers wait unread. Let it breathe between batches.
    if (i % START_BATCH === START_BATCH - 1) await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(servers);
  const wallMs = performance.now() - started;
  clearTimeout(deadline);
  const used = process.cpuUsage(cpu);
  loop.disable();
  const result: FleetClientResult = {
    wallMs,
    ms: run.ms,
    requests: run.requests,
    errors: run.errors,
    errorExamples: run.errorExamples,
    unfinished: run.unfinished,
    unfinishedExamples: run.unfinishedExamples,
    workloads: run.workloads,
    violations: run.violations,
    cpuMs: { user: used.user / 1000, system: used.system / 1000 },
    loopDelayMs: { p50: percentileMs(loop, 50), p99: percentileMs(loop, 99), max: Math.max(0, loop.max / 1e6 - LOOP_RESOLUTION_MS) },
    rss: { start: rssAtStart, peak: process.resourceUsage().maxRSS * 1024 },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
