/**
 * Where dispatch might be, in the order DESIGN §9 gives: URLs given on the command line
 * (or DISPATCH_URL), then the HTTP boot URIs in the firmware's Boot#### variables, then
 * mDNS. Each source is asked only once the candidates before it are used up, so a
 * workload that reaches its dispatch at once never waits for an mDNS browse.
 */

/** Where a candidate came from, as the one-line summary names it. */
export type Origin = '--server' | 'DISPATCH_URL' | 'firmware' | 'mDNS';

export interface Candidate {
  readonly url: string;
  readonly origin: Origin;
}

/** The mDNS browser (src/mdns/browse.ts); it already skips loopback and link-local addresses. */
export type BrowseDispatch = (options: { timeoutMs: number; log?: (m: string) => void }) => Promise<Array<{ url: string; host: string; port: number }>>;

export interface DiscoverDeps {
  /** --server URLs, else DISPATCH_URL, in order. */
  readonly explicit: readonly Candidate[];
  /** The efivars directory, for the summary. */
  readonly efivars: string;
  readonly firmware: () => Promise<string[]>;
  /** Loads the mDNS browser; undefined result = not available. Absent = turned off. */
  readonly mdns?: (() => Promise<BrowseDispatch | undefined>) | undefined;
  readonly mdnsTimeoutMs: number;
  /** Milliseconds left before the overall deadline. */
  readonly remainingMs: () => number;
  readonly log: (message: string) => void;
  /** The overall deadline: nothing is started after it. */
  readonly signal: AbortSignal;
}

/** What the sources that gave nothing new said; the failure line ends with these. */
export type Notes = string[];

const MIN_BROWSE_MS = 500;
const SEND_RESERVE_MS = 2_000;

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`;
}

/** Resolve with the promise, or reject with the signal's reason once it aborts. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Candidates one by one, each URL once; `notes` collects why a source added nothing. */
export async function* discover(deps: DiscoverDeps, notes: Notes): AsyncGenerator<Candidate> {
  const seen = new Set<string>();
  const fresh = function* (found: readonly Candidate[]) {
    for (const candidate of found) {
      if (seen.has(candidate.url)) continue;
      seen.add(candidate.url);
      yield candidate;
    }
  };

  yield* fresh(deps.explicit);

  const uris = await abortable(deps.firmware(), deps.signal);
  deps.log(uris.length === 0 ? `firmware: no HTTP boot URI in ${deps.efivars}` : `firmware: ${uris.join(', ')}`);
  const fromFirmware = uris.filter((url) => !seen.has(url));
  if (fromFirmware.length === 0) notes.push(uris.length === 0 ? `firmware: no HTTP boot URI in ${deps.efivars}` : 'firmware: nothing new');
  yield* fresh(fromFirmware.map((url) => ({ url, origin: 'firmware' as const })));

  if (deps.mdns === undefined) {
    notes.push('mDNS: off');
    return;
  }
  const browse = await abortable(deps.mdns(), deps.signal);
  if (browse === undefined) {
    notes.push('mDNS: not available in this build');
    return;
  }
  // Browse no longer than leaves time to send to what it finds.
  const timeoutMs = Math.max(MIN_BROWSE_MS, Math.min(deps.mdnsTimeoutMs, deps.remainingMs() - SEND_RESERVE_MS));
  deps.log(`mDNS: browsing _dispatch._tcp for ${seconds(timeoutMs)}`);
  let found: Awaited<ReturnType<BrowseDispatch>>;
  try {
    found = await abortable(browse({ timeoutMs, log: deps.log }), deps.signal);
  } catch (err) {
    if (deps.signal.aborted) throw err;
    notes.push(`mDNS: failed (${(err as Error).message})`);
    return;
  }
  deps.log(found.length === 0 ? 'mDNS: nothing found' : `mDNS: ${found.map((f) => f.url).join(', ')}`);
  const fromMdns = found.map((f) => f.url).filter((url) => !seen.has(url));
  if (fromMdns.length === 0) notes.push(found.length === 0 ? `mDNS: nothing found in ${seconds(timeoutMs)}` : 'mDNS: nothing new');
  yield* fresh(fromMdns.map((url) => ({ url, origin: 'mDNS' as const })));
}
