/**
 * `beacon boot` and `beacon report`: parse, find dispatch, send, and turn the outcome
 * into one line and an exit code (0 taken, 1 not taken, 2 bad command line). Every
 * edge (HTTP, files, stdin, mDNS, clock) comes in through BeaconIo so tests can run it
 * in process; main.ts wires the real ones.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Delivery, deliver, type Tried } from './deliver.ts';
import { abortable, type BrowseDispatch, discover, type Notes } from './discover.ts';
import { firmwareBootUris } from './firmware.ts';
import { httpClient, type HttpClient } from './http.ts';
import { type BeaconConfig, InfoExit, parseArgs, UsageError } from './options.ts';
import { wireReport } from './report.ts';

export const EXIT = { taken: 0, notTaken: 1, usage: 2 } as const;

/** How long mDNS is browsed (DESIGN §9). */
export const MDNS_BROWSE_MS = 10_000;
/** One request never waits longer than this (and never past the overall deadline). */
export const REQUEST_TIMEOUT_MS = 10_000;
/** Waits before the 2nd, 3rd and 4th try of one candidate that fails with 5xx or a network error. */
export const RETRY_DELAYS_MS: readonly number[] = [500, 1_000, 2_000];

export interface BeaconIo {
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: {
    readonly isTTY: boolean;
    /** Everything on stdin, to its end. */
    read(signal: AbortSignal): Promise<Buffer>;
  };
  /** The mDNS browser, loaded when first needed; undefined when this build has none. */
  readonly loadBrowse: (log: (message: string) => void) => Promise<BrowseDispatch | undefined>;
  readonly http?: HttpClient;
  readonly retryDelaysMs?: readonly number[];
  readonly mdnsBrowseMs?: number;
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`;
}

class BodyError extends Error {
  override name = 'BodyError';
}

/** The report body: --body FILE, `-` or a non-terminal stdin, else none. */
async function readBody(config: BeaconConfig, io: BeaconIo, signal: AbortSignal, log: (m: string) => void): Promise<string> {
  const file = config.report?.bodyFile;
  if (file !== undefined && file !== '-') {
    try {
      return (await readFile(file, { signal })).toString('utf8');
    } catch (err) {
      if (signal.aborted) throw new BodyError(`--body ${file} was not read`);
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(`--body ${file}: cannot read it (${code === 'ENOENT' ? 'no such file' : (code ?? (err as Error).message)})`);
    }
  }
  if (file === undefined && io.stdin.isTTY) {
    log('no --body and stdin is a terminal: sending the report without a body');
    return '';
  }
  log('reading the report body from stdin');
  try {
    return (await abortable(io.stdin.read(signal), signal)).toString('utf8');
  } catch (err) {
    if (signal.aborted) throw new BodyError('stdin did not end');
    throw new BodyError(`cannot read stdin: ${(err as Error).message}`);
  }
}

function triedText(tried: readonly Tried[]): string[] {
  return tried.map(({ candidate, outcome }) => `${candidate.url} (${candidate.origin}): ${outcome}`);
}

/** The one line for a message nobody took. */
export function undeliveredLine(command: string, delivery: Extract<Delivery, { kind: 'undelivered' }>, notes: Notes, timeoutMs: number, explicit: boolean): string {
  const parts = [...(explicit ? [] : ['no --server or DISPATCH_URL']), ...triedText(delivery.tried), ...notes];
  if (delivery.timedOut) parts.push(`gave up after ${seconds(timeoutMs)} (--timeout)`);
  const head = delivery.tried.length === 0 ? `${command}: no dispatch found` : `${command}: no dispatch took it`;
  return `${head}: ${parts.join('; ')}`;
}

export async function runBeacon(argv: readonly string[], version: string, io: BeaconIo): Promise<number> {
  let config: BeaconConfig;
  try {
    config = parseArgs(argv, version, { out: (text) => io.stdout(text.replace(/\n$/, '')), env: io.env });
  } catch (err) {
    if (err instanceof InfoExit) return EXIT.taken;
    if (err instanceof UsageError) {
      io.stderr(`beacon: ${err.message}`);
      return EXIT.usage;
    }
    throw err;
  }
  const log = config.verbose ? (message: string) => io.stderr(`beacon: ${message}`) : () => undefined;
  const started = Date.now();
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error('overall timeout')), config.timeoutMs);
  const signal = deadline.signal;
  const remainingMs = () => Math.max(1, config.timeoutMs - (Date.now() - started));
  const http = io.http ?? httpClient(`beacon/${version}`);
  try {
    let body: string | undefined;
    if (config.report) {
      try {
        body = JSON.stringify(wireReport({ ...config.report, body: await readBody(config, io, signal, log) }));
      } catch (err) {
        if (err instanceof UsageError) {
          io.stderr(`beacon: ${err.message}`);
          return EXIT.usage;
        }
        if (err instanceof BodyError) {
          io.stderr(`beacon: report not sent: ${err.message}${signal.aborted ? ` within ${seconds(config.timeoutMs)} (--timeout)` : ''}`);
          return EXIT.notTaken;
        }
        throw err;
      }
    }
    const method = config.command === 'boot' ? 'POST' : 'PUT';
    const notes: Notes = [];
    const candidates = discover(
      {
        explicit: config.explicit,
        efivars: config.efivars,
        firmware: () => firmwareBootUris(config.efivars, (m) => log(`firmware: ${m}`)),
        mdns: config.mdns ? () => io.loadBrowse(log) : undefined,
        mdnsTimeoutMs: io.mdnsBrowseMs ?? MDNS_BROWSE_MS,
        remainingMs,
        log,
        signal,
      },
      notes,
    );
    const delivery = await deliver(candidates, {
      send: (url, s) =>
        http.send({
          method,
          url,
          body,
          contentType: body === undefined ? undefined : 'application/json',
          // Not cut to the time left: the overall deadline ends a request by itself, and a
          // request timer firing at the same moment would be reported as the server's fault.
          timeoutMs: REQUEST_TIMEOUT_MS,
          signal: s,
        }),
      retryDelaysMs: io.retryDelaysMs ?? RETRY_DELAYS_MS,
      sleep: (ms, s) => sleep(ms, undefined, { signal: s }),
      log,
      signal,
    });
    switch (delivery.kind) {
      case 'accepted': {
        const said = delivery.answer.text.trim().split('\n')[0] ?? '';
        io.stdout(`beacon: ${config.command} taken by ${delivery.candidate.url} (${delivery.candidate.origin})${said === '' ? '' : `: ${said}`}`);
        return EXIT.taken;
      }
      case 'refused':
        io.stderr(`beacon: ${config.command} refused by ${delivery.candidate.url} (${delivery.candidate.origin}): ${delivery.status}${delivery.reason === '' ? '' : ` ${delivery.reason}`}`);
        return EXIT.notTaken;
    }
    io.stderr(`beacon: ${undeliveredLine(config.command, delivery, notes, config.timeoutMs, config.explicit.length > 0)}`);
    return EXIT.notTaken;
  } finally {
    clearTimeout(timer);
    if (io.http === undefined) await http.close();
  }
}
