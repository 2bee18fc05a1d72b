import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/**
 * The bench's fleet client, in a process of its own: a thousand simulated
 * servers over raw sockets (see fleet-child.ts), so that neither its event
 * loop nor its garbage collector sits in the bench process, and what it
 * costs is measured apart from dispatch.
 *
 *   const client = await startFleetClient();   // loaded and idle
 *   // … take dispatch's CPU baseline …
 *   const result = await client.run({ url, servers: 1000, … });
 */

export interface FleetClientConfig {
  /** dispatch's boot URL, e.g. http://127.0.0.1:PORT/dispatch. */
  readonly url: string;
  readonly servers: number;
  /** Index of the first server's loopback address (see loopbackAddress). */
  readonly firstAddress: number;
  /** Servers power on at random moments within this many ms. */
  readonly startSpreadMs: number;
  /** A call with nothing received for this long fails. */
  readonly timeoutMs: number;
  /** The whole run stops after this long. */
  readonly deadlineMs: number;
  /** poweroff.efi's length: a download of exactly this many bytes is the server's poweroff. */
  readonly poweroffSize: number;
  /** A server stops after this many boots even if never powered off. */
  readonly maxBoots: number;
  /**
   * A reboot's length, ms: from the answer to a server's report to its
   * firmware's next HEAD. Real servers take a minute or more to come back. It
   * matters because dispatch hands a server that comes back the next job while
   * any remain: with instant reboots, the first servers to power on run job
   * after job in a closed loop and the rest find the pool empty.
   */
  readonly rebootMs: number;
}

/** The calls whose latencies are kept; `connect` is the TCP handshake before a connection's first request. */
export const CALLS = ['HEAD', 'GET', 'POST', 'PUT', 'connect'] as const;
export type Call = (typeof CALLS)[number];

export interface FleetClientResult {
  /** From the first server's power-on to the last server's end, ms. */
  readonly wallMs: number;
  /** Each answered call's latency, ms: from writing its request to its answer's last byte. */
  readonly ms: Readonly<Record<Call, number[]>>;
  /** Requests written. */
  readonly requests: number;
  /** Non-2xx answers, timeouts, resets, answers cut short or malformed. */
  readonly errors: number;
  readonly errorExamples: readonly string[];
  /** Servers that did not end with poweroff.efi, and why (first few). */
  readonly unfinished: number;
  readonly unfinishedExamples: readonly string[];
  /** How many servers ran how many workloads (downloads other than poweroff.efi): `{ "1": 1000 }` when each ran one. */
  readonly workloads: Readonly<Record<string, number>>;
  /** Answers that broke the protocol without failing (HEAD and GET disagreeing, a wrong type). */
  readonly violations: readonly string[];
  /** The client's own CPU during the run, ms; system time includes the kernel's side of loopback TCP for both ends. */
  readonly cpuMs: { readonly user: number; readonly system: number };
  /** How late the client's event loop ran during the run, ms: this much of a latency may be the client's. */
  readonly loopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** The client process's RSS when the run started (Node and tsx loaded) and its peak (kernel's maxrss), bytes. */
  readonly rss: { readonly start: number; readonly peak: number };
}

export interface FleetClient {
  readonly pid: number;
  /** Run the fleet: once per client. */
  run(config: FleetClientConfig): Promise<FleetClientResult>;
  /** Let it exit (a profile is written at exit), or make it after a few seconds. */
  stop(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./fleet-child.ts', import.meta.url));

/** Spawn the client (with extra node flags, e.g. --cpu-prof) and wait until it has loaded: start-up costs land before any baseline is taken. */
export async function startFleetClient(nodeFlags: readonly string[] = []): Promise<FleetClient> {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', CHILD], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`fleet client exited (${signal ?? code}): ${stderr.trim()}`)));
  const next = async (): Promise<string> => {
    const line = await Promise.race([lines.next(), exited.then((why) => Promise.reject(new Error(why)))]);
    if (line.done) throw new Error(await exited);
    return line.value;
  };
  const ready = await next();
  if (ready !== 'ready') throw new Error(`fleet client said ${JSON.stringify(ready)} instead of ready`);
  return {
    pid: child.pid!,
    async run(config) {
      child.stdin.write(`${JSON.stringify(config)}\n`);
      return JSON.parse(await next()) as FleetClientResult;
    },
    async stop() {
      // Its cue to exit, whether it ran or not.
      child.stdin.end();
      const gone = await Promise.race([exited.then(() => true), delay(5_000).then(() => false)]);
      if (!gone) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
