import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { BOOT_TYPES, FIRMWARE_HEADERS, send, type Sent } from './http.ts';

/**
 * A fleet of simulated servers. Each one connects from its own loopback
 * address (Linux routes all of 127/8 to lo, and dispatch tells servers apart
 * by peer address) and does what a lab server does: the firmware's HEAD and
 * GET as EDK2 sends them, then the workload's `beacon boot` (POST) and
 * `beacon report` (PUT), then a reboot, until it is handed poweroff.efi.
 * Scripted misbehaviour per boot covers the bad cases. Everything is bounded:
 * a timeout on every request, a cap on boots, a deadline for the whole run.
 *
 *   const log = await runFleet({
 *     url: running.url,
 *     servers: [{}, { boots: [{ reports: [] }] }, { then: { breakAfter: 1000 } }],
 *   });
 *   // log.servers[i]: ip, requests (method, status, bytes), boots (workload sha256,
 *   // size, type, beacon/report statuses), why it stopped, protocol violations.
 *
 * Needs Linux (all of 127/8 on lo); on macOS only 127.0.0.1 exists unless aliased.
 */

/** What `beacon report` sends. */
export interface ReportBody {
  readonly title: string;
  readonly body?: string;
  readonly labels?: readonly string[];
  readonly assignees?: readonly string[];
  readonly milestone?: string;
}

/** What a server saw of a workload it booted. */
export interface Seen {
  readonly sha256: string;
  readonly size: number;
  readonly contentType: string;
}

/** What happens on one boot of one server. Empty: download, `beacon boot`, one report, reboot. */
export interface BootPlan {
  /** The firmware's download breaks after this many bytes; it resumes with `Range: bytes=N-(size-1)`. */
  readonly breakAfter?: number;
  /** How many times the workload calls `beacon boot` (POST); default 1. */
  readonly beacons?: number;
  /** Bodies PUT as reports that are not reports (each should get 400), before the real ones. */
  readonly garbage?: readonly string[];
  /** One PUT of a valid-looking report this many bytes long (should get 413), before the real ones. */
  readonly oversized?: number;
  /** Reports PUT; `[]` reboots without reporting. Default: one report naming the server and boot. */
  readonly reports?: readonly ReportBody[] | ((boot: { readonly ip: string; readonly index: number; readonly workload: Seen }) => readonly ReportBody[]);
  /** The server dies here and never comes back (power cut, hang). */
  readonly crash?: 'after-head' | 'after-download' | 'after-boot';
  /** The workload runs this long between `beacon boot` and its reports (default 0). */
  readonly runMs?: number;
}

/** One server's script: `boots[i]` for its i-th boot, then `then` for every later one. */
export interface ServerPlan {
  readonly boots?: readonly BootPlan[];
  readonly then?: BootPlan;
}

export interface FleetOptions {
  /** dispatch's boot URL, e.g. http://127.0.0.1:PORT/dispatch. */
  readonly url: string;
  /** How many well-behaved servers, or one plan per server. */
  readonly servers: number | readonly ServerPlan[];
  /** Index of the first server's address (0 → 127.0.0.2). */
  readonly firstAddress?: number;
  /** poweroff.efi's bytes (default: efi/poweroff.efi), to tell it from a workload. */
  readonly poweroff?: Buffer;
  /** Per-request inactivity limit (default 10 s). */
  readonly requestTimeoutMs?: number;
  /** A server stops after this many boots even if never powered off (default 100). */
  readonly maxBoots?: number;
  /** The whole run stops after this long (default 60 s). */
  readonly deadlineMs?: number;
  /**
   * Servers power on at random moments within this many ms rather than in the
   * same instant (default 0): a lab switched on at once still spreads its
   * firmware starts over seconds.
   */
  readonly startSpreadMs?: number;
  /** Firmware retries a HEAD/GET that failed to connect or got a 5xx (default 0 times). */
  readonly firmwareRetries?: number;
  /** Pause between firmware retries (default 200 ms; EDK2 waits 2 s). */
  readonly retryDelayMs?: number;
  /** Read downloads no faster than this (a slow link; default: as fast as they come). */
  readonly bytesPerSecond?: number;
  /**
   * A boot whose HEAD or GET fails in transport (dispatch away: refused,
   * reset mid-body) starts over from HEAD after `retryDelayMs`, as the boot
   * manager retries a failed HTTP boot, up to this many times per boot
   * (default 0: the server stops with an error).
   */
  readonly rebootOnError?: number;
  /**
   * `beacon boot` and `beacon report` are sent again after `retryDelayMs`
   * when they fail in transport, up to this many times (default 0). A
   * report sent again gets ` (retry N)` on its title, so each copy can be
   * told apart when counting what was filed.
   */
  readonly beaconRetries?: number;
  readonly signal?: AbortSignal;
}

export interface RequestRecord {
  readonly method: string;
  readonly range?: string;
  /** HTTP status; null when the request failed in transport. */
  readonly status: number | null;
  /** Body bytes received. */
  readonly bytes: number;
  readonly localPort?: number;
  readonly error?: string;
  /** ms since the run started. */
  readonly at: number;
  /** How long the request took, from sending it to the end of the answer (ms). */
  readonly ms: number;
}

export interface BootRecord {
  readonly index: number;
  /** What HEAD announced. */
  readonly announced: { readonly size: number; readonly contentType: string };
  /** What was downloaded (resumed parts stitched together); absent when the server crashed after HEAD. */
  workload?: Seen;
  /** The download was poweroff.efi: the server switched itself off. */
  poweroff: boolean;
  /** HEAD and GET came over the same connection. */
  sameConnection?: boolean;
  /** A broken download and its resumption. */
  resumed?: { readonly from: number; readonly status: number | null; readonly contentRange?: string };
  readonly beacons: Array<number | null>;
  readonly garbage: Array<number | null>;
  oversized?: number | null;
  readonly reports: Array<{ readonly title: string; readonly status: number | null }>;
  crashed?: BootPlan['crash'];
  /** When the download started and when the server rebooted or stopped (ms since the run started). */
  readonly startedAt: number;
  endedAt: number;
}

export type StopReason = 'poweroff' | 'crash' | 'max-boots' | 'deadline' | 'error';

export interface ServerLog {
  readonly ip: string;
  readonly requests: RequestRecord[];
  readonly boots: BootRecord[];
  stopped: StopReason;
  /** Boots started over from HEAD because the firmware's request failed in transport (rebootOnError). */
  restarts: number;
  /** Why it stopped, when it was an error. */
  error?: string;
  /** Protocol rules the answers broke (length or type mismatch, bad ranges, …). */
  readonly violations: string[];
}

export interface FleetLog {
  readonly servers: readonly ServerLog[];
  /** Wall time of the run. */
  readonly ms: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** The n-th simulated server's address: 127.0.0.2, 127.0.0.3, …, 127.0.0.254, 127.0.1.1, … */
export function loopbackAddress(index: number): string {
  const k = index + 1;
  const host = (k % 254) + 1;
  const rest = Math.floor(k / 254);
  if (rest >= 65_536) throw new RangeError(`no loopback address for server ${index}`);
  return `127.${Math.floor(rest / 256)}.${rest % 256}.${host}`;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Run the fleet until every server is powered off, crashed, out of boots, or the deadline passes. */
export async function runFleet(options: FleetOptions): Promise<FleetLog> {
  const poweroff = options.poweroff ?? (await readFile(new URL('../../efi/poweroff.efi', import.meta.url)));
  const plans: readonly ServerPlan[] = typeof options.servers === 'number' ? Array.from({ length: options.servers }, () => ({})) : options.servers;
  const deadline = AbortSignal.timeout(options.deadlineMs ?? 60_000);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  // Every in-flight request of every server listens to it.
  setMaxListeners(0, signal);
  const started = performance.now();
  const servers = await Promise.all(
    plans.map((plan, i) =>
      new SimulatedServer(loopbackAddress((options.firstAddress ?? 0) + i), plan, {
        url: options.url,
        poweroff,
        timeoutMs: options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS,
        maxBoots: options.maxBoots ?? 100,
        retries: options.firmwareRetries ?? 0,
        startAfterMs: Math.random() * (options.startSpreadMs ?? 0),
        retryDelayMs: options.retryDelayMs ?? 200,
        bytesPerSecond: options.bytesPerSecond,
        rebootOnError: options.rebootOnError ?? 0,
        beaconRetries: options.beaconRetries ?? 0,
        signal,
        started,
      }).run(),
    ),
  );
  return { servers, ms: performance.now() - started };
}

/** Two servers running the same workload at overlapping times: what dispatch must never allow. */
export interface Overlap {
  readonly sha256: string;
  readonly a: { readonly ip: string; readonly boot: number };
  readonly b: { readonly ip: string; readonly boot: number };
}

/** Every pair of runs of the same workload bytes, on different servers, that overlapped in time. */
export function overlappingRuns(log: FleetLog): Overlap[] {
  const runs = log.servers.flatMap((server) =>
    server.boots.filter((boot) => boot.workload && !boot.poweroff).map((boot) => ({ ip: server.ip, boot, sha256: boot.workload!.sha256 })),
  );
  const overlaps: Overlap[] = [];
  for (let i = 0; i < runs.length; i += 1) {
    for (let j = i + 1; j < runs.length; j += 1) {
      const a = runs[i]!;
      const b = runs[j]!;
      if (a.sha256 !== b.sha256 || a.ip === b.ip) continue;
      if (a.boot.startedAt < b.boot.endedAt && b.boot.startedAt < a.boot.endedAt) {
        overlaps.push({ sha256: a.sha256, a: { ip: a.ip, boot: a.boot.index }, b: { ip: b.ip, boot: b.boot.index } });
      }
    }
  }
  return overlaps;
}

interface ServerContext {
  readonly url: string;
  readonly startAfterMs: number;
  readonly poweroff: Buffer;
  readonly timeoutMs: number;
  readonly maxBoots: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly bytesPerSecond: number | undefined;
  readonly rebootOnError: number;
  readonly beaconRetries: number;
  readonly signal: AbortSignal;
  readonly started: number;
}

/** Stops a server's script: it does nothing more. */
class Stop extends Error {
  constructor(readonly reason: StopReason, message: string) {
    super(message);
  }
}

class SimulatedServer {
  readonly #log: ServerLog;
  #index = 0;

  constructor(
    readonly ip: string,
    readonly plan: ServerPlan,
    readonly ctx: ServerContext,
  ) {
    this.#log = { ip, requests: [], boots: [], stopped: 'max-boots', restarts: 0, violations: [] };
  }

  async run(): Promise<ServerLog> {
    try {
      if (this.ctx.startAfterMs > 0) await this.#pause(this.ctx.startAfterMs);
      for (let index = 0; index < this.ctx.maxBoots; index += 1) {
        const plan = this.plan.boots?.[index] ?? this.plan.then ?? {};
        await this.#boot(index, plan);
      }
    } catch (err) {
      if (err instanceof Stop) {
        this.#log.stopped = err.reason;
        if (err.reason === 'error') this.#log.error = err.message;
      } else {
        this.#log.stopped = 'error';
        this.#log.error = err instanceof Error ? err.message : String(err);
      }
    }
    const last = this.#log.boots.at(-1);
    if (last) last.endedAt = this.#now();
    return this.#log;
  }

  #now(): number {
    return performance.now() - this.ctx.started;
  }

  async #boot(index: number, plan: BootPlan): Promise<void> {
    for (let restarts = 0; ; restarts += 1) {
      // A reboot: whatever the previous boot left open is gone, as on real hardware.
      const firmware = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const workload = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const recorded = this.#log.boots.length;
      try {
        await this.#bootWith(index, plan, firmware, workload);
        return;
      } catch (err) {
        // Stop ends the script; anything else here is the firmware's HEAD or GET failing in transport.
        if (err instanceof Stop || restarts >= this.ctx.rebootOnError) throw err;
        this.#log.boots.splice(recorded);
        this.#log.restarts += 1;
        await this.#pause(this.ctx.retryDelayMs);
      } finally {
        firmware.destroy();
        workload.destroy();
      }
    }
  }

  async #bootWith(index: number, plan: BootPlan, firmware: http.Agent, beacon: http.Agent): Promise<void> {
    this.#index = index;
    const previous = this.#log.boots.at(-1);
    if (previous) previous.endedAt = this.#now();

    const head = await this.#firmware('HEAD', firmware);
    const size = Number(head.headers['content-length']);
    const contentType = String(head.headers['content-type']);
    this.#checkBootAnswer('HEAD', head);
    if (head.body.byteLength !== 0) this.#violation(`HEAD sent a body of ${head.body.byteLength} bytes`);
    if (!Number.isSafeInteger(size) || size <= 0) throw new Stop('error', `HEAD gave no usable Content-Length (${head.headers['content-length']})`);

    const boot: BootRecord = { index, announced: { size, contentType }, poweroff: false, beacons: [], garbage: [], reports: [], startedAt: this.#now(), endedAt: this.#now() };
    this.#log.boots.push(boot);
    if (plan.crash === 'after-head') this.#crash(boot, plan.crash);

    const get = await this.#firmware('GET', firmware, plan.breakAfter === undefined ? {} : { breakAfter: plan.breakAfter });
    boot.sameConnection = head.localPort !== undefined && head.localPort === get.localPort;
    this.#checkBootAnswer('GET', get);
    if (get.headers['content-length'] !== head.headers['content-length']) this.#violation(`GET Content-Length ${get.headers['content-length']} differs from HEAD's ${head.headers['content-length']}`);
    if (get.headers['content-type'] !== head.headers['content-type']) this.#violation(`GET Content-Type ${get.headers['content-type']} differs from HEAD's ${contentType}`);
    let bytes = get.body;
    if (get.broken) {
      bytes = Buffer.concat([bytes, await this.#resume(boot, firmware, bytes.byteLength, size, contentType)]);
    }
    if (bytes.byteLength !== size) this.#violation(`downloaded ${bytes.byteLength} bytes, HEAD announced ${size}`);
    boot.workload = { sha256: sha256(bytes), size: bytes.byteLength, contentType };
    boot.poweroff = bytes.equals(this.ctx.poweroff);
    if (boot.poweroff) {
      if (contentType !== 'application/efi') this.#violation(`poweroff.efi served as ${contentType}`);
      throw new Stop('poweroff', 'powered off');
    }
    if (plan.crash === 'after-download') this.#crash(boot, plan.crash);

    // The workload runs: beacon talks over its own connection, as a booted OS would.
    for (let n = 0; n < (plan.beacons ?? 1); n += 1) boot.beacons.push(await this.#beaconRetried('POST', beacon));
    if (plan.crash === 'after-boot') this.#crash(boot, plan.crash);
    if (plan.runMs !== undefined) await this.#pause(plan.runMs);
    for (const text of plan.garbage ?? []) boot.garbage.push(await this.#beacon('PUT', beacon, text));
    if (plan.oversized !== undefined) boot.oversized = await this.#beacon('PUT', beacon, oversizedReport(plan.oversized));
    const reports =
      typeof plan.reports === 'function'
        ? plan.reports({ ip: this.ip, index, workload: boot.workload })
        : (plan.reports ?? [{ title: `boot ${index} on ${this.ip}`, body: `sha256 ${boot.workload.sha256}\n`, labels: ['fleet'] }]);
    for (const report of reports) {
      for (let attempt = 0; ; attempt += 1) {
        const title = attempt === 0 ? report.title : `${report.title} (retry ${attempt})`;
        const status = await this.#beacon('PUT', beacon, JSON.stringify({ ...report, title }));
        boot.reports.push({ title, status });
        if (status !== null || attempt >= this.ctx.beaconRetries) break;
        await this.#pause(this.ctx.retryDelayMs);
      }
    }
  }

  /** `beacon boot`, sent again while dispatch cannot be reached (beaconRetries). */
  async #beaconRetried(method: 'POST', agent: http.Agent): Promise<number | null> {
    for (let attempt = 0; ; attempt += 1) {
      const status = await this.#beacon(method, agent);
      if (status !== null || attempt >= this.ctx.beaconRetries) return status;
      await this.#pause(this.ctx.retryDelayMs);
    }
  }

  /** EDK2 since August 2024: ask for the rest of the same bytes and insist on the same total. */
  async #resume(boot: BootRecord, firmware: http.Agent, from: number, size: number, contentType: string): Promise<Buffer> {
    const range = `bytes=${from}-${size - 1}`;
    const rest = await this.#firmware('GET', firmware, { range });
    const contentRange = rest.headers['content-range'];
    boot.resumed = { from, status: rest.status, ...(contentRange === undefined ? {} : { contentRange }) };
    if (rest.status !== 206) throw new Stop('error', `resume ${range} got ${rest.status}`);
    if (contentRange !== `bytes ${from}-${size - 1}/${size}`) this.#violation(`resume ${range} got Content-Range ${contentRange}`);
    if (rest.headers['content-type'] !== contentType) this.#violation(`resume got Content-Type ${rest.headers['content-type']}, HEAD said ${contentType}`);
    if (rest.headers['accept-ranges'] !== 'bytes') this.#violation('resume answer without Accept-Ranges: bytes');
    return rest.body;
  }

  #crash(boot: BootRecord, how: NonNullable<BootPlan['crash']>): never {
    boot.crashed = how;
    throw new Stop('crash', `crashed ${how}`);
  }

  #checkBootAnswer(method: 'HEAD' | 'GET', answer: Sent): void {
    const type = answer.headers['content-type'];
    if (answer.status !== 200) throw new Stop('error', `${method} got ${answer.status}: ${answer.body.toString('utf8').trim()}`);
    if (type === undefined || !BOOT_TYPES.includes(type)) this.#violation(`${method} Content-Type ${JSON.stringify(type)} is not a bare UEFI boot type`);
    if (answer.headers['accept-ranges'] !== 'bytes') this.#violation(`${method} without Accept-Ranges: bytes`);
    if (answer.headers.location !== undefined) this.#violation(`${method} redirected (EDK2 does not follow)`);
  }

  /** A firmware request: exactly EDK2's headers, retried as configured when dispatch is unreachable. */
  async #firmware(method: 'HEAD' | 'GET', agent: http.Agent, extra: { range?: string; breakAfter?: number } = {}): Promise<Sent> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const answer = await this.#request(method, agent, {
          headers: extra.range === undefined ? FIRMWARE_HEADERS : { ...FIRMWARE_HEADERS, Range: extra.range },
          ...(extra.breakAfter === undefined ? {} : { breakAfter: extra.breakAfter }),
          ...(extra.range === undefined ? {} : { range: extra.range }),
        });
        if (answer.status < 500 || attempt >= this.ctx.retries) return answer;
      } catch (err) {
        if (err instanceof Stop || attempt >= this.ctx.retries) throw err;
      }
      await this.#pause(this.ctx.retryDelayMs);
    }
  }

  /** A beacon request: its status, or null when it failed in transport. */
  async #beacon(method: 'POST' | 'PUT', agent: http.Agent, body?: string | Buffer): Promise<number | null> {
    try {
      const answer = await this.#request(method, agent, {
        headers: { 'User-Agent': 'beacon-sim', ...(method === 'PUT' ? { 'Content-Type': 'application/json' } : {}) },
        ...(body === undefined ? {} : { body }),
      });
      return answer.status;
    } catch (err) {
      if (err instanceof Stop) throw err;
      return null;
    }
  }

  async #request(method: string, agent: http.Agent, extra: { headers: Readonly<Record<string, string>>; body?: string | Buffer; breakAfter?: number; range?: string }): Promise<Sent> {
    if (this.ctx.signal.aborted) throw new Stop('deadline', 'the run ended');
    const at = this.#now();
    try {
      const answer = await send({
        url: this.ctx.url,
        method,
        localAddress: this.ip,
        agent,
        timeoutMs: this.ctx.timeoutMs,
        signal: this.ctx.signal,
        headers: extra.headers,
        ...(extra.body === undefined ? {} : { body: extra.body }),
        ...(extra.breakAfter === undefined ? {} : { breakAfter: extra.breakAfter }),
        ...(method === 'GET' && this.ctx.bytesPerSecond !== undefined ? { bytesPerSecond: this.ctx.bytesPerSecond } : {}),
      });
      this.#log.requests.push({ method, status: answer.status, bytes: answer.body.byteLength, at, ms: this.#now() - at, ...(extra.range ? { range: extra.range } : {}), ...(answer.localPort === undefined ? {} : { localPort: answer.localPort }) });
      return answer;
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.#log.requests.push({ method, status: null, bytes: 0, at, ms: this.#now() - at, error, ...(extra.range ? { range: extra.range } : {}) });
      if (this.ctx.signal.aborted) throw new Stop('deadline', 'the run ended');
      throw err;
    }
  }

  #violation(what: string): void {
    this.#log.violations.push(`boot ${this.#index}: ${what}`);
  }

  async #pause(ms: number): Promise<void> {
    await delay(ms, undefined, { signal: this.ctx.signal }).catch(() => undefined);
  }
}

/** A well-formed report whose body makes it `bytes` long: only the size limit can refuse it. */
function oversizedReport(bytes: number): Buffer {
  const head = '{"title":"oversized","body":"';
  const tail = '"}';
  return Buffer.from(head + 'x'.repeat(Math.max(0, bytes - head.length - tail.length)) + tail);
}
