/** Text for one output stream, gathered and handed on in order. */
export interface Batched {
  /** Queue text (whole lines, as the log writes them). */
  write(text: string): void;
  /** Hand on everything queued, now. */
  flush(): void;
}

/**
 * Output written once per turn of the event loop instead of once per line.
 * On a file or a pipe `process.stdout.write` is a synchronous system call,
 * and every job event is a log line: a thousand servers booting together
 * would pay one write each, between answers. Text is queued in order and
 * written together by an immediate after the current turn; `flush()` writes
 * it at once (the caller flushes when the process exits, on any path).
 */
export function batched(write: (text: string) => void, schedule: (run: () => void) => void = setImmediate): Batched {
  let queued: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (queued.length === 0) return;
    const text = queued.length === 1 ? queued[0]! : queued.join('');
    queued = [];
    write(text);
  };
  return {
    write(text) {
      queued.push(text);
      if (scheduled) return;
      scheduled = true;
      schedule(flush);
    },
    flush,
  };
}
