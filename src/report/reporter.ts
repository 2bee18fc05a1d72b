import type { Clock, Queue } from '../jobs/index.ts';
import type { Log } from '../log.ts';
import { failureReport } from './markdown.ts';
import type { Report, ReportSink } from './types.ts';

export interface ReporterOptions {
  readonly queue: Queue;
  readonly sink: ReportSink;
  readonly clock: Clock;
  readonly log: Log;
}

/**
 * Turns acknowledged reports and failed jobs into filings: store durably,
 * let HTTP answer 200, then file, and tell the queue where each one went.
 */
export class Reporter {
  readonly #options: ReporterOptions;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #unsubscribe: () => void;

  constructor(options: ReporterOptions) {
    this.#options = options;
    this.#unsubscribe = options.queue.subscribe((event) => {
      if (event.kind === 'failed') this.#track(this.#fileFailure(event.job.id));
    });
  }

  /** Store a report for job `id`; resolves once it is durable (then, and only then, HTTP says 200). */
  async submit(id: number, report: Report): Promise<void> {
    const { queue, sink, clock, log } = this.#options;
    const job = queue.get(id);
    if (!job) throw new Error(`no job ${id}`);
    const stored = await sink.store({ kind: 'report', report, job, receivedAt: clock.now() });
    queue.reportAccepted(id, report.title);
    this.#track(
      sink.file(stored).then(
        (ref) => queue.reportFiled(id, ref),
        (err: unknown) => log('report', `filing ${job.name}'s report ${JSON.stringify(report.title)} failed: ${message(err)}; it stays at ${stored.ref}`),
      ),
    );
  }

  /** File what an earlier run acknowledged but never filed; resolves with how many there were. */
  async recover(): Promise<number> {
    const { sink, log } = this.#options;
    const pending = (await sink.recover?.()) ?? [];
    if (pending.length > 0) log('report', `${pending.length} report(s) from an earlier run are not filed yet: filing them first`);
    for (const stored of pending) {
      const { report, job } = stored.filing;
      this.#track(
        sink.file(stored).then(
          () => undefined,
          (err: unknown) => log('report', `filing ${job.name}'s earlier report ${JSON.stringify(report.title)} stopped: ${message(err)}; it stays at ${stored.ref}`),
        ),
      );
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

  async #fileFailure(id: number): Promise<void> {
    const { queue, sink, clock, log } = this.#options;
    const job = queue.get(id);
    if (!job) return;
    try {
      const stored = await sink.store({ kind: 'failure', report: failureReport(job), job, receivedAt: clock.now() });
      queue.failureFiled(id, await sink.file(stored));
    } catch (err) {
      log('report', `filing the failure of ${job.name} (${job.reason}) failed: ${message(err)}`);
    }
  }

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
