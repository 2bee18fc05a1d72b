/** Short human forms for narrow columns. Pure. */

const KIB = 1024;

/** `512 B`, `64.0K`, `1.5M`, `1.0G`: at most 6 characters. */
export function shortBytes(bytes: number): string {
  if (bytes < KIB) return `${bytes} B`;
  const units = ['K', 'M', 'G', 'T'] as const;
  let value = bytes / KIB;
  let unit = 0;
  while (value >= 999.95 && unit < units.length - 1) {
    value /= KIB;
    unit += 1;
  }
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)}${units[unit]}`;
}

/** `12s`, `4m05s`, `2h10m`, `3d4h`: how long something has been going. */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

/** `1.5M/s`. */
export function shortRate(bytesPerSecond: number): string {
  return `${shortBytes(Math.round(bytesPerSecond))}/s`;
}

/** A bar of `width` cells, `fraction` of them full. */
export function bar(fraction: number, width: number): string {
  const clamped = Math.min(1, Math.max(0, fraction));
  const full = Math.round(clamped * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}

/** Cut `text` to `width` columns with an ellipsis, then pad it. */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return '';
  const cut = text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text;
  return align === 'left' ? cut.padEnd(width) : cut.padStart(width);
}

/** `#123` for an issue URL, the file name for a report file. */
export function shortRef(ref: string): string {
  const issue = /\/issues\/(\d+)(?:#.*)?$/.exec(ref);
  if (issue) return `#${issue[1]}`;
  const slash = ref.lastIndexOf('/');
  return slash >= 0 ? ref.slice(slash + 1) : ref;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
