import { close as fsClose, open as fsOpen, read as fsRead, write as fsWrite } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
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
export function streamTo(outgoing: ServerResponse, source: Readable, transfer: Transfer | undefined, failed?: (reason: string) => void): void {
  if (transfer) {
    // "Delivered" means the last byte left for the kernel: 'finish' says so,
    // a 'close' before it means the server went away.
    outgoing.once('finish', () => transfer.end(true));
    outgoing.once('close', () => transfer.end(false));
  }
  pipeCounted(outgoing, source, transfer, failed);
}

/** streamTo's copying, for a response whose transfer's end is already watched. */
function pipeCounted(outgoing: ServerResponse, source: Readable, transfer: Transfer | undefined, failed: ((reason: string) => void) | undefined): void {
  let sent = 0;
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
    failed?.(err.message);
    // Cut the connection: the client must see a broken transfer, not a short one.
    outgoing.destroy();
  });
}

/** Bytes per file read: large enough that per-read costs vanish, small enough that a few per download stay cheap. */
const FILE_CHUNK = 512 * 1024;
/** The smallest buffer a read takes (a 1 KiB file still reads into one: they are shared). */
const MIN_CHUNK = 64 * 1024;
/** File reads and socket writes in flight on libuv's threads at once, for every download together (libuv runs four at a time anyway). */
const MAX_POOL_OPS = 32;
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
 * File reads and socket writes on libuv's threads wait for a turn: a thousand
 * downloads starting together would otherwise each take a buffer and queue
 * its read behind the others, holding the buffer all the while, and the
 * journal's and the reports' file operations would wait behind them all.
 * `start` runs when the operation may begin and calls its `done` once it is over.
 */
let turns = 0;
const waitingTurns: Array<(done: () => void) => void> = [];
function whenPoolFree(start: (done: () => void) => void): void {
  if (turns >= MAX_POOL_OPS) {
    waitingTurns.push(start);
    return;
  }
  turns += 1;
  start(turnDone);
}
function turnDone(): void {
  const next = waitingTurns.shift();
  if (next) next(turnDone);
  else turns -= 1;
}

/** A socket that libuv's threads may write to directly: its descriptor, and whether a write is on its way there. */
interface DirectSocket {
  readonly fd: number;
  writing: boolean;
  /** The socket's own destroy, held back while a write is on its way to the descriptor. */
  destroyLater?: () => void;
}
const directSockets = new WeakMap<Socket, DirectSocket>();

/**
 * The socket's descriptor, for writes made on libuv's threads instead of by
 * the JavaScript thread, so that copying a download into the kernel uses
 * every core (Node has no sendfile). A descriptor must never be closed while
 * such a write is queued for it: a new connection or file could get the same
 * number and take the bytes. So the socket's destroy (every way Node or
 * dispatch closes it goes through it) waits for that write to come back.
 * Undefined where Node gives no descriptor (then the socket writes as usual).
 */
function directSocket(socket: Socket): DirectSocket | undefined {
  const known = directSockets.get(socket);
  if (known) return known;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0 || socket.destroyed) return undefined;
  const direct: DirectSocket = { fd, writing: false };
  const destroyable = socket as unknown as { _destroy(err: Error | null, cb: (err: Error | null) => void): void };
  const destroy = destroyable._destroy;
  destroyable._destroy = function (this: Socket, err, cb) {
    if (direct.writing) direct.destroyLater = () => destroy.call(this, err, cb);
    else destroy.call(this, err, cb);
  };
  directSockets.set(socket, direct);
  return direct;
}

/** Bytes file downloads handed to sockets: written on libuv's threads, and through Node. */
const handed = { direct: 0, node: 0 };
/** What file downloads have handed to sockets so far, in this process (tests and the bench look). */
export function handedBytes(): { readonly direct: number; readonly node: number } {
  return { ...handed };
}

/**
 * Hand `bytes` of `buffer` to the response's socket, then call `done`. The
 * first write of a response goes through Node (it carries the headers);
 * after it, with nothing else queued on the socket, the bytes are written to
 * the descriptor on one of libuv's threads, and what the socket cannot take
 * at once (a client slower than the disk) goes through Node, which waits for
 * room. `direct` says the headers have left. True when the bytes go the
 * direct way: nothing else may be written to the socket until `done`.
 */
export function writeChunk(outgoing: ServerResponse, buffer: Buffer, bytes: number, direct: boolean, done: () => void): boolean {
  const socket = outgoing.socket;
  const target = direct && socket !== null && outgoing.writableLength === 0 ? directSocket(socket) : undefined;
  if (target === undefined || target.writing) {
    handed.node += bytes;
    outgoing.write(buffer.subarray(0, bytes), () => done());
    return false;
  }
  whenPoolFree((turn) => {
    if (outgoing.destroyed || socket!.destroyed) {
      turn();
      // Never before this function has returned: its caller learns first that the bytes went the direct way.
      queueMicrotask(done);
      return;
    }
    target.writing = true;
    fsWrite(target.fd, buffer, 0, bytes, null, (err, written) => {
      turn();
      target.writing = false;
      const destroyLater = target.destroyLater;
      target.destroyLater = undefined;
      // Destroyed meanwhile: now the descriptor may close.
      if (destroyLater) {
        destroyLater();
        return done();
      }
      if (err && err.code !== 'EAGAIN') {
        // The client went away (EPIPE, ECONNRESET): the transfer is broken.
        outgoing.destroy();
        return done();
      }
      // Node's idle timer only sees what goes through Node: bytes leaving here are activity too.
      if (socket!.timeout) socket!.setTimeout(socket!.timeout);
      const sent = err ? 0 : written;
      handed.direct += sent;
      if (sent === bytes) return done();
      handed.node += bytes - sent;
      outgoing.write(buffer.subarray(sent, bytes), () => done());
    });
  });
  return true;
}

export interface SendOptions {
  /**
   * Where the bytes are found again when the file is no longer at its path (an
   * asset cache deleted while dispatch runs): they are streamed from there.
   */
  readonly instead?: () => Readable;
  /** Why the transfer was cut, when it was dispatch's side that failed (not a client that left). */
  readonly failed?: (reason: string) => void;
}

/** File downloads under way (sendFile): from the call until the response ends or closes. */
let downloads = 0;

/**
 * Send bytes [start, end] of a file to the Node response, in chunks read into
 * shared buffers: one chunk is read from disk while the socket takes the
 * other (see `writeChunk`), and a buffer goes back to the pool once the
 * socket has taken its bytes, so memory per download is bounded. Callbacks
 * rather than promises: a gigabyte is 2,048 chunks per download, and each
 * promise, result object and closure per chunk is garbage the collector must
 * chase while every download runs. Accounting as `streamTo`.
 */
export function sendFile(outgoing: ServerResponse, path: string, range: { start: number; end: number }, transfer: Transfer | undefined, options: SendOptions = {}): void {
  const { instead, failed } = options;
  if (transfer) {
    outgoing.once('finish', () => transfer.end(true));
    outgoing.once('close', () => transfer.end(false));
  }
  const fail = (reason: string) => {
    transfer?.end(false);
    failed?.(reason);
    // Cut the connection: the client must see a broken transfer, not a short one.
    outgoing.destroy();
  };
  downloads += 1;
  let counted = true;
  const over = () => {
    if (!counted) return;
    counted = false;
    downloads -= 1;
  };
  outgoing.once('close', over);
  fsOpen(path, 'r', (err, fd) => {
    if (err?.code === 'ENOENT' && instead !== undefined && !outgoing.destroyed) {
      over();
      return pipeCounted(outgoing, instead(), transfer, failed);
    }
    if (err) return fail(err.message);
    const chunk = Math.min(FILE_CHUNK, range.end + 1 - range.start);
    /** Chunks read and not yet taken by the socket: at most two, one being written while the next is read. */
    let sending = 0;
    /** A chunk read while one goes the direct way waits here: nothing may overtake a write made on libuv's threads. */
    let queued: { readonly buffer: Buffer; readonly bytes: number } | undefined;
    let writingDirect = false;
    /** The first write is done: the headers have left with it. */
    let started = false;
    let ended = false;
    let position = range.start;
    let reading = false;
    let open = true;
    // Never close the descriptor under a read in flight: the number could be reused meanwhile.
    const release = () => {
      if (!open || reading) return;
      open = false;
      fsClose(fd, () => undefined);
    };
    const write = (buffer: Buffer, bytes: number) => {
      // One download alone is faster written by the JavaScript thread (Node queues its next chunk
      // at once; the direct way waits for a hop to a thread and back per chunk); several share the copying out.
      writingDirect = writeChunk(outgoing, buffer, bytes, started && downloads > 1, () => {
        writingDirect = false;
        started = true;
        sending -= 1;
        giveBuffer(buffer);
        const next = queued;
        queued = undefined;
        if (next && outgoing.destroyed) {
          sending -= 1;
          giveBuffer(next.buffer);
        } else if (next) {
          write(next.buffer, next.bytes);
        }
        pump();
      });
    };
    const pump = () => {
      if (outgoing.destroyed) return release();
      if (position > range.end) {
        release();
        // Once the socket has taken every chunk: 'finish' then means every byte reached the kernel.
        if (sending === 0 && !ended) {
          ended = true;
          over();
          outgoing.end();
        }
        return;
      }
      if (!open || reading || sending >= 2) return;
      reading = true;
      whenPoolFree((done) => {
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
            if (!outgoing.destroyed) fail(readErr?.message ?? `${path} ends at byte ${position}, short of the ${range.end + 1} announced`);
            return;
          }
          position += bytesRead;
          sending += 1;
          if (writingDirect) queued = { buffer, bytes: bytesRead };
          else write(buffer, bytesRead);
          transfer?.progress(position - range.start);
          pump();
        });
      });
    };
    outgoing.once('close', release);
    pump();
  });
}
