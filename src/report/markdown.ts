import type { JobView, TimelineEntry } from '../jobs/index.ts';
import type { Filing, Report } from './types.ts';

/**
 * A filing as one Markdown document: YAML front matter, then the body verbatim.
 * Strings are written as JSON strings, which YAML reads as double-quoted
 * scalars, so no title or label can break the front matter.
 */
export function renderMarkdown(filing: Filing): string {
  const { report, job } = filing;
  const lines = [
    '---',
    `title: ${q(report.title)}`,
    `labels: ${list(report.labels)}`,
    `assignees: ${list(report.assignees)}`,
    `milestone: ${report.milestone === null ? 'null' : q(report.milestone)}`,
    `kind: ${filing.kind}`,
    `workload: ${q(job.name)}`,
    `ip: ${job.ip === null ? 'null' : q(job.ip)}`,
    `state: ${job.state}`,
    ...(job.reason === null ? [] : [`reason: ${q(job.reason)}`]),
    `received: ${iso(filing.receivedAt)}`,
    'timeline:',
    ...job.timeline.flatMap((entry) => [`  - at: ${iso(entry.at)}`, `    event: ${q(entry.what)}`]),
    '---',
    '',
  ];
  return lines.join('\n') + report.body;
}

/** The report dispatch writes itself when a job fails (rule 3 and later rules). */
export function failureReport(job: JobView): Report {
  const server = job.ip ?? 'an unknown server';
  return {
    title: `${job.name} failed on ${server}: ${job.reason ?? 'unknown reason'}`,
    body: [
      `The workload **${job.name}** failed on server \`${server}\`: ${job.reason ?? 'unknown reason'}.`,
      '',
      'Timeline:',
      '',
      ...timelineLines(job.timeline, job.dropped),
      '',
    ].join('\n'),
    labels: [],
    assignees: [],
    milestone: null,
  };
}

export function timelineLines(timeline: readonly TimelineEntry[], dropped: number): string[] {
  const lines = timeline.map((entry) => `- ${iso(entry.at)} ${entry.ip ? `[${entry.ip}] ` : ''}${entry.what}`);
  if (dropped > 0) lines.splice(1, 0, `- … ${dropped} earlier event(s) not kept`);
  return lines;
}

function q(text: string): string {
  return JSON.stringify(text);
}

function list(items: readonly string[]): string {
  return `[${items.map(q).join(', ')}]`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
