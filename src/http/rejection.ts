import type { Log } from '../log.ts';

/**
 * A request refused at the HTTP edge: the 4xx status and the short reason the
 * client is told. Routes throw it; `createApp`'s error handler is the one
 * place that turns it into an answer and a log line.
 */
export class Rejection extends Error {
  override readonly name = 'Rejection';

  constructor(
    readonly status: 400 | 404 | 405 | 408 | 413 | 416 | 417 | 429 | 431,
    /** One line, no trailing newline: sent as the body and logged. */
    readonly reason: string,
    readonly headers: Readonly<Record<string, string>> = {},
    options?: { cause?: unknown },
  ) {
    // A refusal is an answer, not a fault: no stack trace, whose capture costs more than the rest of a 404.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(reason, options);
    Error.stackTraceLimit = limit;
  }
}

/** Logs one refusal: the peer it came from and the line to log. */
export type RejectionLog = (peer: string, message: string) => void;

export interface RejectionLogOptions {
  /** One line per peer per window; the rest are counted (default 10 s). */
  readonly windowMs?: number;
  /** Lines per window from every peer together (default 50). */
  readonly perWindow?: number;
  /** Peers remembered at once (default 1024). */
  readonly maxPeers?: number;
  readonly now?: () => number;
}

/**
 * Bad clients must not flood the log: the first refusal of each peer is
 * logged, then at most one line per peer per window, and at most `perWindow`
 * lines in all; what was left out is counted in the next line that is logged.
 */
export function limitedRejectionLog(log: Log, options: RejectionLogOptions = {}): RejectionLog {
  const windowMs = options.windowMs ?? 10_000;
  const perWindow = options.perWindow ?? 50;
  const maxPeers = options.maxPeers ?? 1024;
  const now = options.now ?? Date.now;
  const peers = new Map<string, { until: number; skipped: number }>();
  let windowStart = -Infinity;
  let logged = 0;
  let skippedOthers = 0;
  return (peer, message) => {
    const t = now();
    if (t - windowStart >= windowMs) {
      windowStart = t;
      logged = 0;
    }
    const known = peers.get(peer);
    if (known && t < known.until) {
      known.skipped += 1;
      return;
    }
    if (logged >= perWindow) {
      skippedOthers += 1;
      if (known) known.skipped += 1;
      return;
    }
    logged += 1;
    const notes: string[] = [];
    if (known && known.skipped > 0) notes.push(`${known.skipped} more from ${peer} not logged`);
    if (skippedOthers > 0) notes.push(`${skippedOthers} more from other peers not logged`);
    skippedOthers = 0;
    peers.delete(peer);
    peers.set(peer, { until: t + windowMs, skipped: 0 });
    // Oldest first: a Map keeps insertion order, and a peer logged again was re-inserted.
    for (const key of peers.keys()) {
      if (peers.size <= maxPeers) break;
      peers.delete(key);
    }
    log('http', notes.length > 0 ? `${message} (${notes.join('; ')})` : message);
  };
}

const shared = new WeakMap<Log, RejectionLog>();

/** The rejection log of one `Log`: the app and the listener share it, so a peer's window is one. */
export function rejectionLog(log: Log): RejectionLog {
  let found = shared.get(log);
  if (!found) {
    found = limitedRejectionLog(log);
    shared.set(log, found);
  }
  return found;
}
