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

/** Bytes per file read: large enough that per-read costs vanish, small enough that a few per download stay cheap. */
const FILE_CHUNK = 512 * 1024;
/** The smallest buffer a read takes (a 1 KiB file still reads into one: they are shared). */
const MIN_CHUNK = 64 * 1024;
/** File reads in flight at once, for every download together (libuv reads four at a time anyway). */
const MAX_READS = 32;
/** Idle buffers kept for the next reads, in bytes. */
const POOL_BYTES = 8 * 1024 * 1024;

/**
 * Read buffers shared by every download, by size (powers of two from 64 KiB
 * to 512 KiB). A buffer leaves the pool for one read and comes back once the
 * socket has taken its bytes (the write callback), so what a burst of
 * downloads holds is what is being read or sent, not a buffer each for all of
 * them; and no buffer is allocated (or left to the collector) per download.
 */
const pool = new Map<number, Buffer[]>();
let pooledBytes = 0;

function takeBuffer(bytes: number): Buffer {
  let size = MIN_CHUNK;
  while (size < bytes) size *= 2;
  const free = pool.get(size)?.pop();
  if (free === undefined) return Buffer.allocUnsafeSlow(size);
  pooledBytes -= size;
  return free;
}

function giveBuffer(buffer: Buffer): void {
  if (pooledBytes + buffer.byteLength > POOL_BYTES) return;
  pooledBytes += buffer.byteLength;
  const free = pool.get(buffer.byteLength) ?? [];
  free.push(buffer);
  pool.set(buffer.byteLength, free);
}

/**
 * Reads wait for a turn: a thousand downloads starting together would
 * otherwise each take a buffer and queue its read behind the others on
 * libuv's threads, holding the buffer all the while. `start` runs when a read
 * may begin and calls its `done` once the read is over.
 */
let reads = 0;
const waitingReads: Array<(done: () => void) => void> = [];
function whenReadable(start: (done: () => void) => void): void {
  if (reads >= MAX_READS) {
    waitingReads.push(start);
    return;
  }
  reads += 1;
  start(readDone);
}
function readDone(): void {
  const next = waitingReads.shift();
  if (next) next(readDone);
  else reads -= 1;
}

/**
 * Send bytes [start, end] of a file to the Node response, in chunks read into
 * shared buffers: one chunk is read from disk while the socket sends the
 * other, and a buffer goes back to the pool once the socket has taken its
 * bytes (the write callback), so memory per download is bounded. Callbacks
 * rather than promises: a gigabyte is 2,048 chunks per download, and each
 * promise, result object and closure per chunk is garbage the collector must
 * chase while every download runs. Accounting as `streamTo`.
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
    const chunk = Math.min(FILE_CHUNK, range.end + 1 - range.start);
    /** Chunks the socket has not taken yet: at most two, one sending while the next is read. */
    let sending = 0;
    let position = range.start;
    let reading = false;
    let open = true;
    // Never close the descriptor under a read in flight: the number could be reused meanwhile.
    const release = () => {
      if (!open || reading) return;
      open = false;
      fsClose(fd, () => undefined);
    };
    const sent = (buffer: Buffer) => () => {
      sending -= 1;
      giveBuffer(buffer);
      pump();
    };
    const pump = () => {
      if (!open || reading) return;
      if (outgoing.destroyed) return release();
      if (position > range.end) {
        release();
        outgoing.end();
        return;
      }
      if (sending >= 2) return;
      reading = true;
      whenReadable((done) => {
        if (outgoing.destroyed) {
          done();
          reading = false;
          return release();
        }
        const buffer = takeBuffer(chunk);
        fsRead(fd, buffer, 0, Math.min(chunk, range.end + 1 - position), position, (readErr, bytesRead) => {
          done();
          reading = false;
          if (outgoing.destroyed || readErr || bytesRead === 0) {
            giveBuffer(buffer);
            release();
            // A file that shrank since it was announced: never end short as if complete.
            if (!outgoing.destroyed) fail();
            return;
          }
          position += bytesRead;
          sending += 1;
          outgoing.write(buffer.subarray(0, bytesRead), sent(buffer));
          transfer?.progress(position - range.start);
          pump();
        });
      });
    };
    outgoing.once('close', release);
    pump();
  });
}
