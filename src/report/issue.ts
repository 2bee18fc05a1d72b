import { timelineLines } from './markdown.ts';
import type { Filing } from './types.ts';

/** GitHub refuses an issue or comment body longer than this (422). */
export const GITHUB_BODY_LIMIT = 65_536;
/** GitHub's titles stop here. */
export const GITHUB_TITLE_LIMIT = 256;
/**
 * Room kept in the issue body for notes, the footer and the marker, so the
 * split of the report body never depends on them: a retry that adds a note
 * must post the same comments as the attempt before it.
 */
const FIRST_PART = GITHUB_BODY_LIMIT - 16_384;
const LATER_PART = GITHUB_BODY_LIMIT - 1_024;
const FOOTER_TIMELINE = 8_000;

/** Hidden in the issue so a retry after a crash can tell the report was already filed. */
export function issueMarker(id: string): string {
  return `<!-- dispatch:report:${id} -->`;
}

/** Hidden in the comment on a failure issue that links to report `id`, a late one (rule 4). */
export function linkMarker(id: string): string {
  return `<!-- dispatch:report:${id}:link -->`;
}

/** Hidden in comment `part` (2, 3, …) of a long report. */
export function partMarker(id: string, part: number): string {
  return `<!-- dispatch:report:${id}:part:${part} -->`;
}

export interface IssuePlan {
  readonly title: string;
  readonly body: string;
  /** The rest of a long report, in order. */
  readonly comments: readonly string[];
}

/**
 * The issue and comments one filing becomes. Pure and deterministic in
 * `filing` and `id`; `notes` (why a milestone or assignees were dropped) only
 * change the issue body.
 */
export function planIssue(filing: Filing, id: string, notes: readonly string[]): IssuePlan {
  const parts = splitBody(filing.report.body, FIRST_PART, LATER_PART);
  const total = parts.length;
  const head = notes.length > 0 ? `${notes.map((n) => `> **dispatch:** ${n}`).join('\n>\n')}\n\n` : '';
  const continued = total > 1 ? `\n\n> **dispatch:** this report is longer than a GitHub issue can hold; it continues in ${total - 1} comment(s) below.` : '';
  const body = `${head}${parts[0]}${continued}\n\n${footer(filing)}\n${issueMarker(id)}`;
  const comments = parts.slice(1).map((part, i) => `**Report continued (part ${i + 2} of ${total})**\n\n${part}\n\n${partMarker(id, i + 2)}`);
  return { title: issueTitle(filing.report.title), body, comments };
}

export function issueTitle(title: string): string {
  const line = title.replace(/\s+/g, ' ').trim();
  return line.length <= GITHUB_TITLE_LIMIT ? line : `${sliceSafe(line, GITHUB_TITLE_LIMIT - 1)}…`;
}

/** The short footer every issue ends with: workload, server, when, and the job's timeline. */
function footer(filing: Filing): string {
  const { job } = filing;
  const lines = timelineLines(job.timeline, job.dropped);
  // Keep the latest events when the timeline is long.
  let kept = lines;
  while (kept.join('\n').length > FOOTER_TIMELINE && kept.length > 1) kept = kept.slice(1);
  if (kept.length < lines.length) kept = [`- … ${lines.length - kept.length} earlier event(s) omitted`, ...kept];
  return [
    '---',
    `<sub>dispatch · workload \`${job.name}\` · server \`${job.ip ?? 'unknown'}\` · received ${new Date(filing.receivedAt).toISOString()}</sub>`,
    '',
    '<details><summary>Timeline</summary>',
    '',
    ...kept,
    '',
    '</details>',
  ].join('\n');
}

/**
 * Cut `text` into parts of at most `first`, then `later`, UTF-16 units (never
 * fewer characters than GitHub counts), at a line break when one is near,
 * never inside a surrogate pair. Joined, the parts are `text` exactly.
 */
export function splitBody(text: string, first: number, later: number): string[] {
  const parts: string[] = [];
  let rest = text;
  let max = first;
  while (rest.length > max) {
    let cut = rest.lastIndexOf('\n', max - 1) + 1;
    if (cut < max * 0.8) cut = max;
    if (isHighSurrogate(rest.charCodeAt(cut - 1))) cut -= 1;
    parts.push(rest.slice(0, cut));
    rest = rest.slice(cut);
    max = later;
  }
  parts.push(rest);
  return parts;
}

function sliceSafe(text: string, length: number): string {
  const cut = isHighSurrogate(text.charCodeAt(length - 1)) ? length - 1 : length;
  return text.slice(0, cut);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
