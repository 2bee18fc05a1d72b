import type { JobView, Verdict } from '../jobs/index.ts';
import { shortDuration, shortRef } from './format.ts';

/** One line of the end-of-run summary. */
export interface SummaryRow {
  readonly workload: string;
  readonly server: string;
  /** `finished`, `failed: <reason>`, or `report not filed`. */
  readonly result: string;
  /** Issue numbers or report files, comma separated; `-` when none. */
  readonly filed: string;
  /** From the job's first assignment to its final state. */
  readonly duration: string;
  readonly ok: boolean;
}

export function summaryRow(job: JobView): SummaryRow {
  const started = job.timeline[0]?.at;
  const result =
    job.state === 'failed' ? `failed: ${job.reason ?? 'unknown reason'}` : job.state === 'reported' ? 'report not filed (kept in the outbox)' : job.state;
  return {
    workload: job.name,
    server: job.ip ?? '-',
    result,
    filed: job.reports.length > 0 ? job.reports.map(shortRef).join(', ') : '-',
    duration: started === undefined ? '-' : shortDuration(job.since - started),
    ok: job.state === 'finished',
  };
}

/** The table `--exit-when-done` prints: one row per job, then the verdict. Plain text, no colour. */
export function summaryTable(verdict: Verdict): string {
  const header: SummaryRow = { workload: 'WORKLOAD', server: 'SERVER', result: 'RESULT', filed: 'ISSUE/REPORT', duration: 'TIME', ok: true };
  const rows = verdict.jobs.map(summaryRow);
  const columns = ['workload', 'server', 'result', 'filed', 'duration'] as const;
  const widths = columns.map((column) => Math.max(...[header, ...rows].map((row) => row[column].length)));
  const line = (row: SummaryRow) =>
    columns
      .map((column, i) => (i === columns.length - 1 ? row[column] : row[column].padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const finished = verdict.jobs.filter((job) => job.state === 'finished').length;
  const parts = [`${verdict.jobs.length} job(s): ${finished} finished, ${verdict.failed} failed`];
  if (verdict.unfiled > 0) parts.push(`${verdict.unfiled} with reports not filed`);
  if (verdict.lingered.length > 0) parts.push(`never fetched poweroff.efi: ${verdict.lingered.join(', ')}`);
  parts.push(`exit ${verdict.code}`);
  return [line(header), ...rows.map(line), '', parts.join('; ')].join('\n');
}
