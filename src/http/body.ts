import { close as fsClose, open as fsOpen, read as fsRead } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Transfer } from '../jobs/index.ts';

/**
 * A web stream over a Node stream that counts what it hands on and tells the
 * transfer how it ended: the body when there is no Node response to write to
 * (`app.request()` in tests). Pull-based, so at most one chunk sits in memory.
 */
export function countedBody(source: Readable, transfer: Transfer | undefined): ReadableStream<Uint8Array> {
  const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let sent = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let next: IteratorResult<Buffer>;
        try {
          next = await chunks.next();
        } catch (err) {
          const permanent = (err as { permanent?: unknown }).permanent === true;
          if (permanent) transfer?.fail((err as Error).message);
          else transfer?.end(false);
          controller.error(err);
          return;
        }
        if (next.done) {
          controller.close();
          transfer?.end(true);
          return;
        }
        sent += next.value.byteLength;
        transfer?.progress(sent);
        controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.byteLength));
      },
      async cancel() {
        transfer?.end(false);
        await chunks.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Write a Node stream straight to the Node response, counting what it hands
 * to the socket and telling the transfer how it ended. No web stream in
 * between: each chunk goes from the file read to the socket write as it is,
 * and the headers leave with the first bytes. Backpressure is the socket's:
 * reading pauses while the client is slower than the disk.
 */
export function streamTo(outgoing: ServerResponse, source: Readable, transfer: Transfer | undefined): void {
  let sent = 0;
  if (transfer) {
    // "Delivered" means the last byte left for the kernel: 'finish' says so,
    // a 'close' before it means the server went away.
    outgoing.once('finish', () => transfer.end(true));
    outgoing.once('close', () => transfer.end(false));
  }
  // A client that left must not keep the file open.
  outgoing.once('close', () => source.destroy());
  if (outgoing.destroyed) return;
  source.on('data', (chunk: Buffer) => {
    sent += chunk.byteLength;
    transfer?.progress(sent);
    if (!outgoing.write(chunk)) source.pause();
  });
  outgoing.on('drain', () => source.resume());
  source.once('end', () => outgoing.end());
  source.once('error', (err: Error & { permanent?: unknown }) => {
    if (err.permanent === true) transfer?.fail(err.message);
    else transfer?.end(false);
    // Cut the connection: the client must see a broken transfer, not a short one.
    outgoing.destroy();
  });
}

/** Bytes per file read: large enough that per-read costs vanish, small enough that 2 per download stay cheap. */
const FILE_CHUNK = 512 * 1024;
/** The smallest read buffer handed out: every size is rounded up to a power of two from here. */
const SMALLEST_CHUNK = 16 * 1024;
/** Bytes of idle read buffers kept for the next downloads; beyond it, a returned buffer is left to the collector. */
const POOL_BYTES = 16 * 1024 * 1024;

/**
 * Read buffers, reused from one download to the next. A thousand servers
 * fetching a small workload at once would otherwise each get a buffer of its
 * own, alive until the collector gets to it, long after the socket took its
 * bytes: most of the memory of a boot storm. A buffer comes back only once
 * the socket is done with it; one that never does is simply not reused.
 */
const pool = {
  free: new Map<number, Buffer[]>(),
  bytes: 0,
  take(wanted: number): Buffer {
    let size = SMALLEST_CHUNK;
    while (size < wanted) size *= 2;
    const buffer = this.free.get(size)?.pop();
    if (!buffer) return Buffer.allocUnsafeSlow(size);
    this.bytes -= size;
    return buffer;
  },
  give(buffer: Buffer): void {
    if (this.bytes + buffer.byteLength > POOL_BYTES) return;
    this.bytes += buffer.byteLength;
    const list = this.free.get(buffer.byteLength) ?? [];
    list.push(buffer);
    this.free.set(buffer.byteLength, list);
  },
};

/**
 * Send bytes [start, end] of a file to the Node response through two
 * buffers, reused for every chunk of this download and then by the next
 * download: one is read from disk while the socket sends the other. A buffer
 * is read into again only once the socket has taken its bytes (the write
 * callback), so memory per download is fixed. Callbacks rather than
 * promises: a gigabyte is 2,048 chunks per download, and each promise,
 * result object and closure per chunk is garbage the collector must chase
 * while every download runs. Accounting as `streamTo`.
 */
export function sendFile(outgoing: ServerResponse, path: string, range: { start: number; end: number }, transfer: Transfer | undefined): void {
  if (transfer) {
    outgoing.once('finish', () => transfer.end(true));
    outgoing.once('close', () => transfer.end(false));
  }
  const fail = () => {
    transfer?.end(false);
    // Cut the connection: the client must see a broken transfer, not a short one.
    outgoing.destroy();
  };
  fsOpen(path, 'r', (err, fd) => {
    if (err) return fail();
    const length = range.end + 1 - range.start;
    const size = Math.min(FILE_CHUNK, length);
    // The second buffer only when one chunk is not the whole range (most EFI files are one chunk).
    const buffers: Array<Buffer | undefined> = [pool.take(size), size < length ? pool.take(size) : undefined];
    /** The socket still holds buffer i's bytes. */
    const held = [false, false];
    let next = 0;
    let position = range.start;
    let reading = false;
    let open = true;
    /** Buffers go back to the pool once neither the disk nor the socket has them. */
    const giveBack = () => {
      if (open || reading) return;
      for (const i of [0, 1]) {
        const buffer = buffers[i];
        if (buffer === undefined || held[i]) continue;
        buffers[i] = undefined;
        pool.give(buffer);
      }
    };
    // Never close the descriptor under a read in flight: the number could be reused meanwhile.
    const release = () => {
      if (!open || reading) return;
      open = false;
      fsClose(fd, () => undefined);
      giveBack();
    };
    const pump = () => {
      if (!open || reading) return;
      if (outgoing.destroyed) return release();
      if (position > range.end) {
        release();
        outgoing.end();
        return;
      }
      const i = next;
      if (held[i]) return;
      const buffer = buffers[i]!;
      reading = true;
      fsRead(fd, buffer, 0, Math.min(size, range.end + 1 - position), position, (readErr, bytesRead) => {
        reading = false;
        if (outgoing.destroyed) return release();
        // A file that shrank since it was announced: never end short as if complete.
        if (readErr || bytesRead === 0) {
          release();
          return fail();
        }
        position += bytesRead;
        held[i] = true;
        next = i ^ 1;
        outgoing.write(buffer.subarray(0, bytesRead), taken[i]);
        transfer?.progress(position - range.start);
        pump();
      });
    };
    const taken = [0, 1].map((i) => () => {
      held[i] = false;
      if (open) pump();
      else giveBack();
    });
    outgoing.once('close', release);
    pump();
  });
}
