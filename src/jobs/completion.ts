import type { Clock } from './clock.ts';
import type { JobState } from './machine.ts';
import type { JobView, Queue } from './queue.ts';

/** How a run ended under `--exit-when-done` (DESIGN §5 rule 8). */
export interface Verdict {
  /** Every job as it ended, in name order. */
  readonly jobs: readonly JobView[];
  readonly failed: number;
  /** Jobs whose reports could not be filed (they stay in the outbox for the next run). */
  readonly unfiled: number;
  /** Servers that ran a job and never fetched poweroff.efi before the linger ran out. */
  readonly lingered: readonly string[];
  /** 0 when no job failed and every report was filed, else 1. */
  readonly code: 0 | 1;
}

export interface CompletionOptions {
  readonly clock: Clock;
  /** How long to wait, once every job is settled, for servers to fetch poweroff.efi. */
  readonly lingerMs: number;
  /** Filings (reports and failure issues) under way; rule 8 waits for them. */
  readonly filing: () => number;
  readonly onDone: (verdict: Verdict) => void;
  /** How often to look again (events only mark the picture stale). */
  readonly checkEveryMs?: number;
}

const FINAL: ReadonlySet<JobState> = new Set(['finished', 'failed']);

/**
 * Rule 8: the run is done when every job is final, every report filed, and
 * every server that ran a job has been served poweroff.efi, or `lingerMs`
 * after the rest was true. It listens to queue events only and keeps its
 * own small picture (state per job, which servers ran and powered off), so
 * each look costs nothing that grows with the number of jobs.
 */
export class Completion {
  readonly #queue: Queue;
  readonly #options: CompletionOptions;
  readonly #states = new Map<number, JobState>();
  /** Jobs not yet final. */
  readonly #open = new Set<number>();
  /** Servers that were handed a job, and whether they have fetched poweroff.efi since. */
  readonly #servers = new Map<string, boolean>();
  readonly #unsubscribe: () => void;
  #timer: unknown;
  #settledAt: number | undefined;
  #done = false;

  constructor(queue: Queue, options: CompletionOptions) {
    this.#queue = queue;
    this.#options = options;
    for (const job of queue.list()) {
      this.#track(job.id, job.state);
      // A resumed run: servers that held a job before must still be powered off.
      if (job.ip !== null && job.state !== 'unassigned') this.#servers.set(job.ip, false);
    }
    for (const ip of queue.poweredOff()) if (this.#servers.has(ip)) this.#servers.set(ip, true);
    this.#unsubscribe = queue.subscribe((event) => {
      if (event.kind === 'job') {
        this.#track(event.job.id, event.job.state);
        if (event.job.state === 'assigned' && event.job.ip !== null) this.#servers.set(event.job.ip, false);
      } else if (event.kind === 'poweroff' && event.method === 'GET') {
        // Only a server that ran a job matters; one that came to find nothing is already off.
        if (this.#servers.has(event.ip)) this.#servers.set(event.ip, true);
      }
    });
    this.#schedule(0);
  }

  /** Stop watching without a verdict. */
  stop(): void {
    this.#done = true;
    this.#unsubscribe();
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
  }

  /** Look now; the timer also looks every `checkEveryMs`. */
  check(): void {
    if (this.#done) return;
    const { clock, lingerMs } = this.#options;
    if (!this.#settled()) {
      this.#settledAt = undefined;
      return;
    }
    const now = clock.now();
    this.#settledAt ??= now;
    const waiting = [...this.#servers].filter(([, off]) => !off).map(([ip]) => ip);
    if (waiting.length === 0 || now - this.#settledAt >= lingerMs) this.#finish(waiting);
  }

  /** Every job final, or stuck Reported with nothing left filing (its report stays in the outbox). */
  #settled(): boolean {
    if (this.#options.filing() > 0) return false;
    for (const id of this.#open) if (this.#states.get(id) !== 'reported') return false;
    return true;
  }

  #track(id: number, state: JobState): void {
    this.#states.set(id, state);
    if (FINAL.has(state)) this.#open.delete(id);
    else this.#open.add(id);
  }

  #schedule(ms: number): void {
    this.#timer = this.#options.clock.setTimeout(() => {
      this.#timer = undefined;
      this.check();
      if (!this.#done) this.#schedule(this.#options.checkEveryMs ?? 250);
    }, ms);
  }

  #finish(lingered: readonly string[]): void {
    this.stop();
    const jobs = this.#queue.list();
    const failed = jobs.filter((job) => job.state === 'failed').length;
    const unfiled = jobs.filter((job) => job.state === 'reported').length;
    this.#options.onDone({ jobs, failed, unfiled, lingered, code: failed > 0 || unfiled > 0 ? 1 : 0 });
  }
}
