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
