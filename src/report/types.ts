import type { JobView } from '../jobs/index.ts';

/** What `beacon report` sends (PUT body), validated. */
export interface Report {
  readonly title: string;
  readonly body: string;
  readonly labels: readonly string[];
  readonly assignees: readonly string[];
  readonly milestone: string | null;
}

/** A report with what dispatch knows about where it came from. */
export interface Filing {
  readonly kind: 'report' | 'failure';
  readonly report: Report;
  readonly job: JobView;
  /** When dispatch received it (clock ms). */
  readonly receivedAt: number;
  /** The run it belongs to, so a resumed run can tell its own stored reports from an earlier run's. */
  readonly run?: string;
  /**
   * It came after its job failed by the run timeout (rule 4): the sink links
   * it from the failure (a comment on the failure issue, a note in the
   * failure file). `key` is where the failure report was stored.
   */
  readonly late?: LateLink;
}

/** The failure a late report belongs to. */
export interface LateLink {
  readonly failureTitle: string;
  /** The failure report's StoredFiling.ref; null if it was never stored. */
  readonly failureKey: string | null;
  /** Where the failure was filed, when it was by the time the late report came. */
  readonly failureRef: string | null;
}

/** Where reports end up: GitHub issues, or Markdown files in a directory. */
export interface ReportSink {
  readonly description: string;
  /** Store one filing so that it survives a crash; resolves with where it is. */
  store(filing: Filing): Promise<StoredFiling>;
  /** File a stored filing for good; resolves with where it went (issue URL, file path). */
  file(stored: StoredFiling): Promise<string>;
  /** Filings an earlier run stored but did not file. */
  recover?(): Promise<StoredFiling[]>;
  /** Where a filing stored at `ref` was filed, if it was; undefined when the sink cannot tell. */
  whereFiled?(ref: string): Promise<string | undefined>;
  /** Stop filing; what is unfiled stays stored for the next start. */
  close?(): void;
}

export interface StoredFiling {
  readonly filing: Filing;
  /** Where the durable copy is. */
  readonly ref: string;
}

export class ReportError extends Error {
  override name = 'ReportError';
}
