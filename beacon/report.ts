import type { Report } from '../src/report/types.ts';

/** What `beacon report` was asked to send. */
export interface ReportFields {
  readonly title: string;
  readonly body: string;
  readonly labels: readonly string[];
  readonly assignees: readonly string[];
  readonly milestone: string | undefined;
}

/** The PUT body as the reference beacon sends it: empty fields are left out, not sent empty. */
export type WireReport = Pick<Report, 'title'> & Partial<Pick<Report, 'body' | 'labels' | 'assignees'>> & { readonly milestone?: string };

export function wireReport(fields: ReportFields): WireReport {
  const labels = fields.labels.filter((label) => label.trim() !== '');
  const assignees = fields.assignees.filter((login) => login.trim() !== '');
  return {
    title: fields.title,
    ...(fields.body === '' ? {} : { body: fields.body }),
    ...(labels.length === 0 ? {} : { labels }),
    ...(assignees.length === 0 ? {} : { assignees }),
    ...(fields.milestone === undefined || fields.milestone.trim() === '' ? {} : { milestone: fields.milestone }),
  };
}
