import type { Report } from './types.ts';

export type Validated<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/**
 * What a report may hold. The title and the label count are GitHub's own
 * limits (an issue title stops at 256 characters, an issue takes 100
 * labels): a report over them could never be filed as sent, so the workload
 * hears so now, while it can still say it differently. Label names, logins
 * and the milestone are only bounded: one GitHub refuses (a label over 50
 * characters, an unknown login) is dropped when filing and the issue says so
 * (DESIGN §6), so the rest of the report is never lost over it.
 */
export const REPORT_LIMITS = {
  titleChars: 256,
  labels: 100,
  labelChars: 256,
  assignees: 100,
  assigneeChars: 256,
  milestoneChars: 256,
  /** A report is two levels deep; unknown fields may nest a little, never this far. */
  depth: 32,
} as const;

/**
 * Check a PUT body the way beacon and the reference beacon send it:
 * `{title, body?, labels?, assignees?, milestone?}`; absent, null and empty
 * optional fields mean "none". Unknown fields are ignored (a newer beacon may
 * send more), but count towards the size and depth limits.
 */
export function parseReport(text: string): Validated<Report> {
  // Before parsing: a hostile body of a million `[` is refused in one pass,
  // without building what JSON.parse would build from it.
  if (nestingDepth(text) > REPORT_LIMITS.depth) return { ok: false, reason: `report JSON nests deeper than ${REPORT_LIMITS.depth} levels` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'report is not valid JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, reason: 'report must be a JSON object' };
  }
  const fields = json as Record<string, unknown>;
  const { title } = fields;
  if (title === undefined || title === null) return { ok: false, reason: 'report needs a title' };
  if (typeof title !== 'string') return { ok: false, reason: 'title must be a string' };
  if (title.trim() === '') return { ok: false, reason: 'report needs a title' };
  if (chars(title) > REPORT_LIMITS.titleChars) return { ok: false, reason: `report title is longer than ${REPORT_LIMITS.titleChars} characters` };

  const body = optionalString(fields, 'body', Infinity);
  if (!body.ok) return body;
  const milestone = optionalString(fields, 'milestone', REPORT_LIMITS.milestoneChars);
  if (!milestone.ok) return milestone;
  const labels = stringList(fields, 'labels', REPORT_LIMITS.labels, REPORT_LIMITS.labelChars);
  if (!labels.ok) return labels;
  const assignees = stringList(fields, 'assignees', REPORT_LIMITS.assignees, REPORT_LIMITS.assigneeChars);
  if (!assignees.ok) return assignees;

  return {
    ok: true,
    value: {
      title,
      body: body.value ?? '',
      labels: labels.value,
      assignees: assignees.value,
      milestone: milestone.value === undefined || milestone.value === '' ? null : milestone.value,
    },
  };
}

function optionalString(fields: Record<string, unknown>, name: string, maxChars: number): Validated<string | undefined> {
  const value = fields[name];
  if (value === undefined || value === null) return { ok: true, value: undefined };
  if (typeof value !== 'string') return { ok: false, reason: `${name} must be a string` };
  if (maxChars !== Infinity && chars(value) > maxChars) return { ok: false, reason: `${name} is longer than ${maxChars} characters` };
  return { ok: true, value };
}

function stringList(fields: Record<string, unknown>, name: string, maxItems: number, maxChars: number): Validated<string[]> {
  const value = fields[name];
  if (value === undefined || value === null) return { ok: true, value: [] };
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    return { ok: false, reason: `${name} must be a list of strings` };
  }
  const kept = value.filter((item) => item.trim() !== '');
  if (kept.length > maxItems) return { ok: false, reason: `report has more than ${maxItems} ${name}` };
  const long = kept.findIndex((item) => chars(item) > maxChars);
  if (long !== -1) return { ok: false, reason: `${name}[${long}] is longer than ${maxChars} characters` };
  return { ok: true, value: kept };
}

/** GitHub counts characters (code points), not UTF-16 units or bytes. */
function chars(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/** How deep arrays and objects nest in JSON text (strings skipped); stops counting once past the limit. */
function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i += 1; // backslash: skip what it escapes
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) {
      inString = true;
    } else if (ch === 0x5b || ch === 0x7b) {
      depth += 1;
      if (depth > deepest) deepest = depth;
      if (deepest > REPORT_LIMITS.depth) return deepest;
    } else if (ch === 0x5d || ch === 0x7d) {
      depth -= 1;
    }
  }
  return deepest;
}
