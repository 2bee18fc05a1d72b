import type { Clock, JobView, Queue } from '../jobs/index.ts';
import type { Log } from '../log.ts';
import { failureReport } from './markdown.ts';
import type { LateLink, Report, ReportSink, StoredFiling } from './types.ts';

export interface ReporterOptions {
  readonly queue: Queue;
  readonly sink: ReportSink;
  readonly clock: Clock;
  readonly log: Log;
  /**
   * Resolves once the queue's state is saved: a report is acknowledged only
   * when the job that took it is durably Reported (absent: nothing is saved).
   */
  readonly persisted?: () => Promise<void>;
}

/**
 * Turns acknowledged reports and failed jobs into filings: store durably,
 * let HTTP answer 200, then file, and tell the queue where each one went.
 */
export class Reporter {
  readonly #options: ReporterOptions;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #unsubscribe: () => void;
  /** Failure reports being stored, by job: a late report waits for its failure to be stored first. */
  readonly #failures = new Map<number, Promise<unknown>>();

  constructor(options: ReporterOptions) {
    this.#options = options;
    this.#unsubscribe = options.queue.subscribe((event) => {
      if (event.kind === 'failed') this.#fileFailure(event.job.id);
    });
  }

  /** Store a report for job `id`; resolves once it is durable (then, and only then, HTTP says 200). */
  async submit(id: number, report: Report): Promise<void> {
    const { queue, sink, clock, log } = this.#options;
    let job = queue.get(id);
    if (!job) throw new Error(`no job ${id}`);
    let late: LateLink | undefined;
    if (job.state === 'failed') {
      // Rule 4: the job timed out before this came. Its failure is stored first, so the two can point at each other.
      await this.#failures.get(id);
      job = queue.get(id)!;
      const failure = queue.failure(id);
      late = { failureTitle: failureReport(job).title, failureKey: failure.key, failureRef: failure.ref };
      report = { ...report, body: `${lateNote(job, late)}\n\n${report.body}` };
    }
    const stored = await sink.store({ kind: 'report', report, job, receivedAt: clock.now(), run: queue.run, ...(late ? { late } : {}) });
    queue.reportAccepted(id, report.title, stored.ref);
    // Filed whatever happens next: it is stored, and a restart can tell it was filed.
    this.#fileReport(id, stored, (err) => log('report', `filing ${job.name}'s report ${JSON.stringify(report.title)} failed: ${message(err)}; it stays at ${stored.ref}`));
    // The 200 waits for the job's Reported state too (a failed save is a 500: beacon says so, and may send it again).
    await this.#options.persisted?.();
  }

  /**
   * File what earlier runs acknowledged but never filed, and square a resumed
   * queue with the sink: its reports and failures stored or filed before the
   * restart are tied back to their jobs (a Reported job finishes once they
   * are filed; a failure is never filed twice, nor forgotten). Resolves with
   * how many stored reports were pending.
   */
  async recover(): Promise<number> {
    const { queue, sink, log } = this.#options;
    const pending = (await sink.recover?.()) ?? [];
    if (pending.length > 0) log('report', `${pending.length} report(s) from an earlier run are not filed yet: filing them first`);
    const pendingRefs = new Set(pending.map((stored) => stored.ref));
    for (const stored of pending) {
      const { report, job, kind } = stored.filing;
      const id = this.#ours(stored);
      if (id !== undefined && kind === 'report') {
        // Stored, but the restart may have come before the queue saved that it took it.
        queue.reportAccepted(id, report.title, stored.ref);
        this.#fileReport(id, stored, (err) => log('report', `filing ${job.name}'s earlier report ${JSON.stringify(report.title)} stopped: ${message(err)}; it stays at ${stored.ref}`));
      } else if (id !== undefined && kind === 'failure') {
        queue.failureStored(id, stored.ref);
        const filing = sink.file(stored).then((ref) => queue.failureFiled(id, ref), (err: unknown) => log('report', `filing the failure of ${job.name} stopped: ${message(err)}; it stays at ${stored.ref}`));
        this.#failures.set(id, Promise.resolve());
        this.#track(filing);
      } else {
        this.#track(
          sink.file(stored).then(
            () => undefined,
            (err: unknown) => log('report', `filing ${job.name}'s earlier report ${JSON.stringify(report.title)} stopped: ${message(err)}; it stays at ${stored.ref}`),
          ),
        );
      }
    }
    for (const job of queue.list()) {
      // Filed before the restart, but the queue had not saved it yet.
      for (const key of queue.unfiled(job.id)) {
        if (pendingRefs.has(key)) continue;
        const ref = (await sink.whereFiled?.(key)) ?? key;
        queue.reportFiled(job.id, ref, key);
      }
      // A failure being filed right now (a run timeout that ran out while the process was down) is not missing.
      if (job.state !== 'failed' || this.#failures.has(job.id)) continue;
      const failure = queue.failure(job.id);
      if (failure.key === null) {
        // Failed just before the restart, failure never stored: file it now.
        log('report', `the failure of ${job.name} (${job.reason}) was not filed before the restart: filing it now`);
        this.#fileFailure(job.id);
      } else if (failure.ref === null && !pendingRefs.has(failure.key)) {
        queue.failureFiled(job.id, (await sink.whereFiled?.(failure.key)) ?? failure.key);
      }
    }
    return pending.length;
  }

  /** Filings (reports and failures) started and not yet ended. */
  get filing(): number {
    return this.#inFlight.size;
  }

  /** Resolves when every filing started so far has ended. */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /**
   * Stop: take no more failures, give filings in flight `graceMs` to finish,
   * then stop the sink; whatever it had not filed stays stored for next time.
   */
  async stop(graceMs: number): Promise<void> {
    this.#unsubscribe();
    await this.#idleWithin(graceMs);
    this.#options.sink.close?.();
    // A request parked by a rate-limit wait does not end on abort: do not wait for it.
    await this.#idleWithin(2_000);
  }

  async #idleWithin(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  /** The job of this run a stored filing belongs to, if any. */
  #ours(stored: StoredFiling): number | undefined {
    const { run, job } = stored.filing;
    if (run === undefined || run !== this.#options.queue.run) return undefined;
    return this.#options.queue.get(job.id)?.name === job.name ? job.id : undefined;
  }

  #fileReport(id: number, stored: StoredFiling, onError: (err: unknown) => void): void {
    this.#track(this.#options.sink.file(stored).then((ref) => this.#options.queue.reportFiled(id, ref, stored.ref), onError));
  }

  #fileFailure(id: number): void {
    const { queue, sink, clock, log, persisted } = this.#options;
    const job = queue.get(id);
    if (!job) return;
    let done!: () => void;
    this.#failures.set(id, new Promise<void>((resolve) => (done = resolve)));
    const work = (async () => {
      try {
        const stored = await sink.store({ kind: 'failure', report: failureReport(job), job, receivedAt: clock.now(), run: queue.run });
        queue.failureStored(id, stored.ref);
        done();
        // Saved before filing, so a restart never files it a second time (a failed save is logged by the writer; file anyway).
        await persisted?.().catch(() => undefined);
        queue.failureFiled(id, await sink.file(stored));
      } catch (err) {
        done();
        log('report', `filing the failure of ${job.name} (${job.reason}) failed: ${message(err)}`);
      }
    })();
    this.#track(work);
  }

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }
}

/** What a late report says at its top: it came after the timeout, and which failure it belongs to. */
function lateNote(job: JobView, late: LateLink): string {
  const failure = late.failureRef ? `${JSON.stringify(late.failureTitle)} (${late.failureRef})` : JSON.stringify(late.failureTitle);
  return `> **dispatch:** this report arrived after the run timeout: ${job.name} on ${job.ip ?? 'its server'} had already failed (${job.reason ?? 'timed out'}). The failure report: ${failure}.`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
