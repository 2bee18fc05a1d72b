import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** What a raw connection saw: every byte the server sent, and how and when it ended. */
export interface RawOutcome {
  readonly data: Buffer;
  /** The status line's code, when the server answered. */
  readonly status: number | null;
  /** ms from connecting until the server closed (or we gave up). */
  readonly ms: number;
  /** 'closed': the server closed (FIN or reset); 'timeout': we gave up waiting. */
  readonly end: 'closed' | 'timeout';
  /** What we could not send before the server closed. */
  readonly unsent: number;
}

export interface RawOptions {
  readonly port: number;
  readonly host?: string;
  /** Source address: which peer this is. */
  readonly localAddress?: string;
  /** Sent in order, `gapMs` apart. */
  readonly chunks: readonly (string | Buffer)[];
  readonly gapMs?: number;
  /** Half-close after the last chunk (default true). */
  readonly end?: boolean;
  /** Give up waiting for the server after this (ms from connecting). */
  readonly limitMs: number;
  /** Stop reading after this many bytes (a client that stopped reading). */
  readonly readLimit?: number;
}

/** One connection that sends exactly the given bytes and records what comes back, bounded in time. */
export function raw(options: RawOptions): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ port: options.port, host: options.host ?? '127.0.0.1', ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
    const received: Buffer[] = [];
    let size = 0;
    let closed = false;
    let sent = 0;
    const total = options.chunks.reduce((n, c) => n + Buffer.byteLength(c), 0);
    const finish = (end: RawOutcome['end']) => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      socket.destroy();
      const data = Buffer.concat(received);
      resolve({ data, status: finalStatus(data), ms: Date.now() - started, end, unsent: total - sent });
    };
    const timer = setTimeout(() => finish('timeout'), options.limitMs);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      size += chunk.byteLength;
      if (options.readLimit !== undefined && size >= options.readLimit) socket.pause();
    });
    socket.on('error', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('end', () => finish('closed'));
    socket.once('connect', async () => {
      for (const [i, chunk] of options.chunks.entries()) {
        if (closed || socket.destroyed || !socket.writable) return;
        socket.write(chunk);
        sent += Buffer.byteLength(chunk);
        if (options.gapMs && i < options.chunks.length - 1) await delay(options.gapMs);
      }
      if (options.end !== false && !closed && socket.writable) socket.end();
    });
  });
}

/** A request split into single bytes: what a slow-loris client sends. */
export function bytewise(text: string): string[] {
  return [...text];
}

/** The status of the first final (not 1xx) answer on a connection, or null when none came. */
export function finalStatus(data: Buffer): number | null {
  const text = data.toString('latin1');
  let at = 0;
  for (;;) {
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(text.slice(at, at + 16));
    if (!match) return null;
    const status = Number(match[1]);
    if (status >= 200) return status;
    const end = text.indexOf('\r\n\r\n', at);
    if (end === -1) return null;
    at = end + 4;
  }
}
