import type { Report } from './types.ts';

export type Validated<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/**
 * Check a PUT body the way beacon and the reference beacon send it:
 * `{title, body?, labels?, assignees?, milestone?}`; absent, null and empty
 * optional fields mean "none". Unknown fields are ignored.
 */
export function parseReport(text: string): Validated<Report> {
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

  const body = optionalString(fields, 'body');
  if (!body.ok) return body;
  const milestone = optionalString(fields, 'milestone');
  if (!milestone.ok) return milestone;
  const labels = stringList(fields, 'labels');
  if (!labels.ok) return labels;
  const assignees = stringList(fields, 'assignees');
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

function optionalString(fields: Record<string, unknown>, name: string): Validated<string | undefined> {
  const value = fields[name];
  if (value === undefined || value === null) return { ok: true, value: undefined };
  if (typeof value !== 'string') return { ok: false, reason: `${name} must be a string` };
  return { ok: true, value };
}

function stringList(fields: Record<string, unknown>, name: string): Validated<string[]> {
  const value = fields[name];
  if (value === undefined || value === null) return { ok: true, value: [] };
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    return { ok: false, reason: `${name} must be a list of strings` };
  }
  return { ok: true, value: value.filter((item) => item.trim() !== '') };
}
