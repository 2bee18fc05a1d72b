/** Values as people type them on a command line. Pure; each throws a one-line reason. */

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** `750ms`, `90s`, `5m`, `1h`, or several together (`1h30m`). A bare number is refused: seconds or minutes? */
export function parseDuration(text: string): number {
  const value = text.trim();
  const parts = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(value) ? value.match(/\d+(?:\.\d+)?(?:ms|s|m|h)/g) : null;
  if (!parts) throw new RangeError(`"${text}" is not a duration (write it like 750ms, 90s, 5m or 1h)`);
  let ms = 0;
  for (const part of parts) {
    const [, amount, unit] = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(part)!;
    ms += Number(amount) * DURATION_UNITS[unit!]!;
  }
  ms = Math.round(ms);
  if (ms <= 0) throw new RangeError(`"${text}" must be longer than zero`);
  // setTimeout cannot wait longer than 2^31-1 ms (about 24.8 days).
  if (ms > 2 ** 31 - 1) throw new RangeError(`"${text}" is too long (at most 24 days)`);
  return ms;
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const BYTE_UNITS: Readonly<Record<string, number>> = {
  '': 1, b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
};

/** `1048576`, `512KiB`, `10MiB`, `10MB`, `1G`. */
export function parseBytes(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new RangeError(`"${text}" is not a size (write it like 1048576, 512KiB or 10MiB)`);
  const bytes = Math.floor(Number(match[1]) * unit);
  if (bytes <= 0 || !Number.isSafeInteger(bytes)) throw new RangeError(`"${text}" must be a positive size`);
  return bytes;
}

export interface BindAddress {
  readonly host: string;
  readonly port: number;
}

/** `HOST:PORT`, `[IPV6]:PORT`, or `:PORT` for every address. Port 0 lets the OS choose. */
export function parseBind(text: string): BindAddress {
  const value = text.trim();
  const match = /^(?:\[([0-9a-fA-F:.%\w-]+)\]|([^:[\]]*)):(\d+)$/.exec(value);
  if (!match) throw new RangeError(`"${text}" is not HOST:PORT (for example 0.0.0.0:8080 or [::]:8080)`);
  const port = Number(match[3]);
  if (!Number.isInteger(port) || port > 65535) throw new RangeError(`port ${match[3]} is out of range (0-65535)`);
  const host = match[1] ?? (match[2] === '' ? '0.0.0.0' : match[2]!);
  return { host, port };
}

/** `/dispatch`: one absolute path segment or more, and not one the monitoring API owns. */
export function parsePath(text: string): string {
  const value = text.trim();
  if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/.test(value)) throw new RangeError(`"${text}" is not an absolute URL path (for example /dispatch)`);
  if (value === '/api' || value.startsWith('/api/')) throw new RangeError(`"${text}" is taken by the monitoring API (/api/…)`);
  return value.length > 1 ? value.replace(/\/+$/, '') : value;
}
