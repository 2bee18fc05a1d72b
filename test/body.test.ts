import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import { spawnSync } from 'node:child_process';
import { closeSync, constants as fsConstants, createReadStream, fstatSync, open as fsOpen, openSync } from 'node:fs';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'node:test';
import { handedBytes, sendFile, writeChunk } from '../src/http/body.ts';

/** What a download's first write (the headers' own) may carry: one 512 KiB chunk. */
const FIRST_CHUNK = 512 * 1024;

/**
 * A response whose socket takes its time: each write's callback fires only
 * when the test says, as a full socket would. What each write handed over is
 * checked again when its callback fires: a read buffer reused before then
 * would have changed under the socket.
 */
class SlowResponse extends EventEmitter {
  destroyed = false;
  ended = false;
  readonly pending: Array<{ readonly chunk: Buffer; readonly copy: Buffer; readonly done: () => void }> = [];
  readonly received: Buffer[] = [];
  changedUnderSocket = 0;
  write(chunk: Buffer, done: () => void): boolean {
    this.pending.push({ chunk, copy: Buffer.from(chunk), done });
    return false;
  }
  end(): void {
    this.ended = true;
    this.emit('finish');
  }
  /** The socket takes the oldest pending write. */
  take(): boolean {
    const write = this.pending.shift();
    if (!write) return false;
    if (!write.chunk.equals(write.copy)) this.changedUnderSocket += 1;
    this.received.push(write.copy);
    write.done();
    return true;
  }
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i += 1) await delay(2);
  assert.ok(check(), 'in time');
}

test('a read buffer is read into again only after the socket has taken it, by this download or the next', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-body-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files = await Promise.all(
    [1_300_000, 1_300_000, 400_000, 400_000, 400_000].map(async (size, i) => {
      const bytes = randomBytes(size);
      const path = join(dir, `f${i}`);
      await writeFile(path, bytes);
      return { path, bytes };
    }),
  );
  // Two big downloads have read their last chunks, still on the socket; smaller ones, in the same 512 KiB buffers, start meanwhile.
  const send = (i: number) => {
    const response = new SlowResponse();
    sendFile(response as unknown as ServerResponse, files[i]!.path, { start: 0, end: files[i]!.bytes.byteLength - 1 }, undefined);
    return response;
  };
  const big = [send(0), send(1)];
  // Take each big download's writes until it has read its last chunk: that one is still on the socket.
  for (const [i, response] of big.entries()) {
    const handed = () => [...response.received, ...response.pending.map((write) => write.chunk)].reduce((sum, chunk) => sum + chunk.byteLength, 0);
    for (;;) {
      await until(() => response.pending.length > 0);
      if (handed() === files[i]!.bytes.byteLength) break;
      response.take();
    }
    // The response ends only once the socket has taken every byte: 'finish' then means all of them reached the kernel.
    assert.ok(!response.ended, 'not ended while the last chunk is still the socket’s');
  }
  const small = [send(2), send(3), send(4)];
  for (const response of small) {
    while (!response.ended) {
      await until(() => response.pending.length > 0 || response.ended);
      response.take();
    }
  }
  for (const response of big) {
    while (response.take()) await delay(5);
    await until(() => response.ended && response.pending.length === 0);
  }
  [...big, ...small].forEach((response, i) => assert.equal(response.changedUnderSocket, 0, `download ${i}: no chunk changed before the socket took it`));
  assert.ok(Buffer.concat(big[0]!.received).equals(files[0]!.bytes));
  assert.ok(Buffer.concat(big[1]!.received).equals(files[1]!.bytes));
  small.forEach((response, i) => assert.ok(Buffer.concat(response.received).equals(files[i + 2]!.bytes), `small download ${i}`));
});

/** A bare node:http server answering every GET with the whole of `path` through sendFile. */
async function fileServer(t: { after(fn: () => unknown): void }, path: string, size: number): Promise<number> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Length': String(size), 'Content-Type': 'application/octet-stream' });
    sendFile(res, path, { start: 0, end: size - 1 }, undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    // Downloads still under way too (a client that never reads).
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as AddressInfo).port;
}

/**
 * `bytes` as a file served by `fileServer`, a connection to it, and another
 * download under way beside it that the client never reads: the direct way is
 * for downloads that run together (one alone is written by Node).
 */
async function servedFile(t: { after(fn: () => unknown): void }, bytes: Buffer): Promise<{ socket: Socket }> {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-body-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'w.efi');
  await writeFile(path, bytes);
  const port = await fileServer(t, path, bytes.byteLength);
  const stalled = connect({ port, host: '127.0.0.1' }, () => stalled.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  stalled.pause();
  t.after(() => stalled.destroy());
  await new Promise<void>((resolve) => stalled.once('readable', () => resolve()));
  // Until its socket is full and it waits for room that never comes: from then on, only the test's download moves the counts.
  const handed = () => handedBytes().direct + handedBytes().node;
  for (let last = -1; handed() !== last; ) {
    last = handed();
    await delay(100);
  }
  const socket = connect({ port, host: '127.0.0.1' });
  t.after(() => socket.destroy());
  return { socket };
}

/** GET / on `socket` (keep-alive, raw HTTP/1.1), read the whole answer by its Content-Length, resolve with its body; `readDelayMs` pauses after each chunk read. */
function getOn(socket: Socket, readDelayMs = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    let length: number | undefined;
    const body: Buffer[] = [];
    let got = 0;
    const onData = (chunk: Buffer) => {
      if (length === undefined) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        const status = /^HTTP\/1\.1 (\d+)/.exec(head.toString('latin1'))?.[1];
        length = Number(/\r\ncontent-length: *(\d+)/i.exec(head.subarray(0, end).toString('latin1'))?.[1]);
        if (status !== '200' || !Number.isSafeInteger(length)) return finish(new Error(`unexpected answer: ${head.subarray(0, end).toString('latin1')}`));
        chunk = head.subarray(end + 4);
      }
      body.push(chunk);
      got += chunk.byteLength;
      if (got >= length) return finish();
      if (readDelayMs > 0) {
        socket.pause();
        setTimeout(() => socket.resume(), readDelayMs);
      }
    };
    const onClose = () => finish(new Error('the connection closed before the answer was whole'));
    const finish = (err?: Error) => {
      socket.off('data', onData);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(body));
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  });
}

test('past its first chunk, a download is written to the socket from libuv’s threads, byte for byte, and the connection stays usable', async (t) => {
  const bytes = randomBytes(5 * 1024 * 1024 + 12_345);
  const { socket } = await servedFile(t, bytes);
  const before = handedBytes();
  // Twice on one connection: what went around Node left it in a state to answer the next request.
  for (let i = 0; i < 2; i += 1) assert.ok((await getOn(socket)).equals(bytes), `download ${i} is the file`);
  // The client can have the last bytes before the write that sent them has called back.
  const total = () => handedBytes().direct + handedBytes().node - before.direct - before.node;
  await until(() => total() === 2 * bytes.byteLength);
  const after = handedBytes();
  const direct = after.direct - before.direct;
  const node = after.node - before.node;
  // Only the first chunk of each (with the headers) must go through Node; a full socket may send a few more bytes that way.
  assert.ok(direct >= bytes.byteLength, `${direct} bytes written from libuv's threads, ${node} through Node`);
});

test('a download alone is written by Node: no hop to a thread and back per chunk', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-body-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bytes = randomBytes(3 * 1024 * 1024);
  const path = join(dir, 'w.efi');
  await writeFile(path, bytes);
  const port = await fileServer(t, path, bytes.byteLength);
  const socket = connect({ port, host: '127.0.0.1' });
  t.after(() => socket.destroy());
  const before = handedBytes();
  assert.ok((await getOn(socket)).equals(bytes));
  await until(() => handedBytes().node - before.node === bytes.byteLength);
  assert.equal(handedBytes().direct, before.direct);
});

test('a client slower than the disk gets every byte: what the socket cannot take at once goes through Node', async (t) => {
  const bytes = randomBytes(24 * 1024 * 1024);
  const { socket } = await servedFile(t, bytes);
  const before = handedBytes();
  assert.ok((await getOn(socket, 1)).equals(bytes));
  const after = handedBytes();
  assert.ok(after.direct > before.direct, 'some bytes went straight to the socket');
  assert.ok(after.node - before.node > FIRST_CHUNK, 'the socket was full at times, and Node waited for room');
});

test('a socket destroyed while a write to its descriptor waits for libuv’s threads keeps its descriptor until that write is back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-body-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' });
  t.after(() => client.destroy());
  client.on('error', () => undefined);
  const socket = await accepted;
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
  // Every one of libuv's threads waits to open a FIFO no one writes to: a write submitted now stays queued.
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos = Array.from({ length: threads }, (_, i) => join(dir, `fifo${i}`));
  for (const fifo of fifos) assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const blocked = fifos.map((fifo) => new Promise<number>((resolve, reject) => fsOpen(fifo, 'r', (err, opened) => (err ? reject(err) : resolve(opened)))));
  // Let the threads go: open each FIFO's other end (non-blocking: its reader is there once its thread runs).
  let released: Promise<void> | undefined;
  const release = () =>
    (released ??= (async () => {
      for (const fifo of fifos) {
        for (let i = 0; ; i += 1) {
          try {
            closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
            break;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || i > 500) throw err;
            await delay(2);
          }
        }
      }
      for (const opened of await Promise.all(blocked)) closeSync(opened);
    })());
  const response = { socket, writableLength: 0, destroyed: false, write: () => assert.fail('nothing goes through Node'), destroy: () => undefined };
  let written = false;
  try {
    writeChunk(response as unknown as ServerResponse, Buffer.from('late bytes'), 10, true, () => (written = true));
    socket.destroy();
    await delay(50);
    // Closed now, the number could go to the next file or connection and take the late bytes.
    assert.doesNotThrow(() => fstatSync(fd), 'the descriptor is still open while the write waits');
    assert.equal(written, false);
  } finally {
    // Whatever happened, the threads are let go: the test's own clean-up needs them.
    await release();
  }
  await until(() => written && socket.closed);
  assert.throws(() => fstatSync(fd), /EBADF/, 'closed once the write came back');
});

/** A server whose every GET is sendFile of `path`, reading from `instead` if it is gone; how each transfer ended (the first word counts, as for a job), and why when cut. */
async function goneFileServer(t: { after(fn: () => unknown): void }, path: string, size: number, instead?: () => Readable) {
  const ends: boolean[] = [];
  const reasons: string[] = [];
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Length': String(size), 'Content-Type': 'application/octet-stream' });
    let last = 0;
    const transfer = { progress: (bytes: number) => assert.ok(bytes >= last && (last = bytes) <= size), end: (delivered: boolean) => ends.push(delivered), fail: () => assert.fail('not a failure') };
    sendFile(res, path, { start: 0, end: size - 1 }, transfer, { ...(instead ? { instead } : {}), failed: (reason) => reasons.push(reason) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { port: (server.address() as AddressInfo).port, ends, reasons };
}

test('a file gone from its path is sent from where its bytes are found again; with nowhere else, the connection is cut', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-body-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bytes = randomBytes(300 * 1024);
  const elsewhere = join(dir, 'fetched-again.efi');
  await writeFile(elsewhere, bytes);
  const gone = join(dir, 'gone.efi');

  const found = await goneFileServer(t, gone, bytes.byteLength, () => createReadStream(elsewhere));
  const socket = connect({ port: found.port, host: '127.0.0.1' });
  t.after(() => socket.destroy());
  assert.ok((await getOn(socket)).equals(bytes), 'every byte, from the other place');
  await until(() => found.ends.length > 0);
  assert.equal(found.ends[0], true, 'a whole transfer');
  assert.deepEqual(found.reasons, []);

  for (const instead of [undefined, () => createReadStream(join(dir, 'nowhere.efi'))]) {
    const lost = await goneFileServer(t, gone, bytes.byteLength, instead);
    const cut = connect({ port: lost.port, host: '127.0.0.1' });
    t.after(() => cut.destroy());
    await assert.rejects(getOn(cut), /closed before the answer was whole/);
    await until(() => lost.ends.length > 0);
    assert.equal(lost.ends[0], false, 'a broken transfer');
    assert.equal(lost.reasons.length, 1);
    assert.match(lost.reasons[0]!, /ENOENT.*(gone|nowhere)\.efi/, 'why, once');
  }
});
