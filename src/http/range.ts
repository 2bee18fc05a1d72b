/** A single `Range: bytes=…` spec before the size is known. */
export type RangeSpec =
  | { readonly kind: 'from'; readonly start: number; readonly end: number | undefined }
  | { readonly kind: 'suffix'; readonly length: number };

const SINGLE = /^bytes=(?:(\d+)-(\d*)|-(\d+))$/;

/**
 * Parse a Range header. Undefined means "ignore it and send the whole body",
 * which RFC 9110 allows for anything we do not handle: absent, malformed,
 * other units, or several ranges (no firmware asks for those).
 */
export function parseRange(header: string | undefined): RangeSpec | undefined {
  if (header === undefined) return undefined;
  const match = SINGLE.exec(header.trim().replace(/\s+/g, ''));
  if (!match) return undefined;
  const [, start, end, suffix] = match;
  if (suffix !== undefined) return { kind: 'suffix', length: Number(suffix) };
  const from = Number(start);
  const to = end === '' || end === undefined ? undefined : Number(end);
  if (!Number.isSafeInteger(from) || (to !== undefined && (!Number.isSafeInteger(to) || to < from))) return undefined;
  return { kind: 'from', start: from, end: to };
}

/** Does this range start at the first byte (a fresh download rather than a resume)? */
export function startsAtZero(spec: RangeSpec): boolean {
  return spec.kind === 'from' && spec.start === 0;
}

/** The inclusive byte range a spec selects from `size` bytes, or undefined when it selects none (416). */
export function resolveRange(spec: RangeSpec, size: number): { start: number; end: number } | undefined {
  if (spec.kind === 'suffix') {
    if (spec.length === 0 || size === 0) return undefined;
    return { start: Math.max(0, size - spec.length), end: size - 1 };
  }
  if (spec.start >= size) return undefined;
  return { start: spec.start, end: Math.min(spec.end ?? size - 1, size - 1) };
}
