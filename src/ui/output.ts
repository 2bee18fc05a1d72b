import { constants, fstatSync, openSync, readFileSync, write as fsWrite, writeSync } from 'node:fs';
import { isatty } from 'node:tty';

/** Where dispatch's output goes: the log, and the TUI's frames. */
export interface Output {
  /** Queue text; `written` runs once it has reached the descriptor (or was dropped). */
  write(text: string, written?: () => void): void;
  /** Write what is queued now, synchronously: the process is ending. */
  flushSync(): void;
  /** The reader has taken nothing for a while: nothing that waits for the terminal to drain may be done now. */
  stalled?(): boolean;
}

/** A Node stream as an Output: what it takes is written (as stdout is, synchronously, on a terminal). */
export function streamOutput(stream: { write(text: string): unknown }): Output {
  return {
    write(text, written) {
      stream.write(text);
      written?.();
    },
    flushSync: () => undefined,
  };
}

export interface FdOutputOptions {
  /** Text queued beyond this many characters is dropped (and counted) while the reader takes nothing. */
  readonly maxQueued?: number;
  /** The line that stands where text was dropped: how many lines, and since when (ms since the epoch). */
  readonly droppedNotice?: (lines: number, since: number) => string;
  /** The descriptor refused text for good (EPIPE: the reader is gone; EIO: the terminal is). Called once. */
  readonly onClosed?: (err: NodeJS.ErrnoException) => void;
  readonly now?: () => number;
}

/** A write that has made no progress for this long means the reader has stopped: what is left at exit is not waited for. */
const STALLED_MS = 1000;
/** A non-blocking descriptor that is full is tried again after this long, doubling up to the maximum. */
const RETRY_MS = 10;
const MAX_RETRY_MS = 200;
/** About 150,000 log lines. */
const MAX_QUEUED = 16 * 1024 * 1024;

interface Pending {
  readonly text: string;
  readonly written: (() => void) | undefined;
}

/**
 * Where to write a descriptor's text without ever waiting on the JavaScript
 * thread for its reader. `direct`: written at once; a write that finds no
 * room fails (EAGAIN) and is tried again later. That holds for a regular
 * file and /dev/null, which never wait for a reader, and for a terminal or a
 * pipe opened again through /proc in non-blocking mode: a description of
 * dispatch's own, so the shell's stays as it was. A socket cannot be opened
 * again; for fd 1, Node puts it in non-blocking mode once `process.stdout`
 * exists. `pool`, when none of that works (no /proc): written on one of
 * libuv's threads, which then does any waiting, but holds that thread while
 * it waits, and keeps the process from exiting until it is done.
 */
export function openTarget(fd: number): { readonly fd: number; readonly mode: 'direct' | 'pool' } {
  try {
    const stats = fstatSync(fd);
    if (stats.isFile() || (stats.isCharacterDevice() && !isatty(fd))) return { fd, mode: 'direct' };
    try {
      return { fd: openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_NOCTTY | O_NONBLOCK), mode: 'direct' };
    } catch {
      // A socket (ENXIO), or no /proc.
    }
    if (fd === 1) void process.stdout;
    return { fd, mode: nonBlocking(fd) ? 'direct' : 'pool' };
  } catch {
    return { fd, mode: 'pool' };
  }
}

/** The descriptor's open file is in non-blocking mode (Linux: /proc; throws without it). */
export function nonBlocking(fd: number): boolean {
  const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  return flags !== undefined && (parseInt(flags, 8) & O_NONBLOCK) !== 0;
}

/** Linux's O_NONBLOCK (Node's fs.constants has no such flag). */
const O_NONBLOCK = 0o4000;

/**
 * Text for a file descriptor (stdout), in order, never waiting on the
 * JavaScript thread. Node writes to a terminal synchronously: a reader that
 * stops reading (an SSH session whose network stalls) would stop dispatch
 * answering the servers. Here every write is one that cannot wait
 * (`openTarget`): when the reader has no room, a timer tries again. What is
 * written in one turn of the event loop leaves in one write after it, one
 * write at a time. While the reader takes nothing, text queues up to
 * `maxQueued` characters; beyond that it is dropped, and a notice says how
 * much, in its place, once the reader takes text again. The process's exit
 * handler calls `flushSync()`.
 */
export class FdOutput implements Output {
  readonly #fd: number;
  readonly #maxQueued: number;
  readonly #notice: ((lines: number, since: number) => string) | undefined;
  readonly #onClosed: ((err: NodeJS.ErrnoException) => void) | undefined;
  readonly #now: () => number;
  #queue: Pending[] = [];
  #queued = 0;
  #scheduled = false;
  /** The write under way, since its last progress: out on the pool, or (`retry`) waiting for the reader to make room. */
  #writing: { since: number; retry?: { readonly bytes: Buffer; readonly offset: number; readonly done: () => void } } | undefined;
  #retryMs = RETRY_MS;
  #dropped: { lines: number; since: number } | undefined;
  #closed = false;
  #idle: Array<() => void> = [];
  /** Opened at the first write. */
  #target: { readonly fd: number; readonly mode: 'direct' | 'pool' } | undefined;

  constructor(fd: number, options: FdOutputOptions = {}) {
    this.#fd = fd;
    this.#maxQueued = options.maxQueued ?? MAX_QUEUED;
    this.#notice = options.droppedNotice;
    this.#onClosed = options.onClosed;
    this.#now = options.now ?? Date.now;
  }

  write(text: string, written?: () => void): void {
    if (this.#closed) {
      written?.();
      return;
    }
    if (this.#queued + text.length > this.#maxQueued) {
      this.#dropped ??= { lines: 0, since: this.#now() };
      this.#dropped.lines += countLines(text);
      written?.();
      return;
    }
    if (this.#dropped) {
      const { lines, since } = this.#dropped;
      this.#dropped = undefined;
      if (this.#notice) this.#push({ text: this.#notice(lines, since), written: undefined });
    }
    this.#push({ text, written });
    if (this.#writing || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#next();
    });
  }

  /** How text is written (`openTarget`), once the first has been. */
  get mode(): 'direct' | 'pool' | undefined {
    return this.#target?.mode;
  }

  stalled(): boolean {
    return this.#writing !== undefined && this.#now() - this.#writing.since > STALLED_MS;
  }

  /**
   * Resolves once everything queued has been written, or after `timeoutMs`
   * (a reader that has stopped must not keep dispatch from exiting).
   */
  idle(timeoutMs: number): Promise<void> {
    if (this.#queue.length === 0 && !this.#writing) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Write what is queued, synchronously, for the process's exit. Not when a
   * write has been out for a second already: the reader has stopped, and
   * waiting for it would keep dispatch from ending.
   */
  flushSync(): void {
    const writing = this.#writing;
    if (this.#closed || this.stalled()) return;
    const parts: Buffer[] = [];
    const callbacks: Array<() => void> = [];
    // A write waiting for room goes first. One out on the pool is its thread's to finish: it may land
    // after what is written here, if the pool had not come to it yet (only an exit can see this).
    const retry = writing?.retry;
    if (retry) {
      writing.retry = undefined;
      this.#writing = undefined;
      parts.push(retry.bytes.subarray(retry.offset));
      callbacks.push(retry.done);
    }
    const queue = this.#take();
    if (queue.length > 0) parts.push(Buffer.from(queue.map((p) => p.text).join(''), 'utf8'));
    if (parts.length === 0) return;
    const bytes = Buffer.concat(parts);
    // Text that never had a write of its own (e.g. printed just before exiting) goes the same non-blocking way.
    const target = (this.#target ??= openTarget(this.#fd));
    let offset = 0;
    let waited = 0;
    while (offset < bytes.byteLength) {
      try {
        offset += writeSync(target.fd, bytes, offset, bytes.byteLength - offset);
      } catch (err) {
        // A non-blocking descriptor that is full: a little longer, then no more.
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || waited >= STALLED_MS) break;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, RETRY_MS);
        waited += RETRY_MS;
      }
    }
    for (const done of callbacks) done();
    for (const p of queue) p.written?.();
  }

  #push(pending: Pending): void {
    this.#queue.push(pending);
    this.#queued += pending.text.length;
  }

  #take(): Pending[] {
    const queue = this.#queue;
    this.#queue = [];
    this.#queued = 0;
    return queue;
  }

  /** Start the next write: everything queued, together. */
  #next(): void {
    if (this.#writing || this.#closed) return;
    if (this.#queue.length === 0) {
      for (const resolve of this.#idle.splice(0)) resolve();
      return;
    }
    const queue = this.#queue;
    // Stays counted while it is out: the cap is on what waits for the reader.
    const text = queue.length === 1 ? queue[0]!.text : queue.map((p) => p.text).join('');
    this.#queue = [];
    this.#writing = { since: this.#now() };
    this.#target ??= openTarget(this.#fd);
    this.#send(Buffer.from(text, 'utf8'), 0, () => {
      this.#queued = Math.max(0, this.#queued - text.length);
      for (const p of queue) p.written?.();
    });
  }

  #send(bytes: Buffer, offset: number, done: () => void): void {
    const target = this.#target!;
    if (target.mode === 'pool') {
      fsWrite(target.fd, bytes, offset, bytes.byteLength - offset, null, (err, written) => this.#sent(bytes, offset, done, err, written));
      return;
    }
    let written = 0;
    try {
      written = writeSync(target.fd, bytes, offset, bytes.byteLength - offset);
    } catch (err) {
      this.#sent(bytes, offset, done, err as NodeJS.ErrnoException, 0);
      return;
    }
    this.#sent(bytes, offset, done, null, written);
  }

  #sent(bytes: Buffer, offset: number, done: () => void, err: NodeJS.ErrnoException | null, written: number): void {
    if (err?.code === 'EAGAIN') {
      // Full: the reader is slow or has stopped. Try again a little later, then less and less often.
      const writing = this.#writing!;
      writing.retry = { bytes, offset, done };
      setTimeout(() => {
        // flushSync may have written it meanwhile.
        if (writing.retry === undefined) return;
        writing.retry = undefined;
        this.#send(bytes, offset, done);
      }, this.#retryMs).unref();
      this.#retryMs = Math.min(MAX_RETRY_MS, this.#retryMs * 2);
      return;
    }
    if (err) return this.#close(err, done);
    this.#retryMs = RETRY_MS;
    if (written > 0) this.#writing!.since = this.#now();
    if (offset + written < bytes.byteLength) {
      // Part of it: the rest as soon as there is room (a direct write would only find it full now).
      if (this.#target!.mode === 'pool') return this.#send(bytes, offset + written, done);
      return this.#sent(bytes, offset + written, done, Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' }), 0);
    }
    this.#writing = undefined;
    done();
    this.#next();
  }

  #close(err: NodeJS.ErrnoException, done: () => void): void {
    this.#closed = true;
    this.#writing = undefined;
    done();
    for (const p of this.#take()) p.written?.();
    for (const resolve of this.#idle.splice(0)) resolve();
    this.#onClosed?.(err);
  }
}

function countLines(text: string): number {
  let lines = 0;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines += 1;
  return lines === 0 ? 1 : lines;
}
