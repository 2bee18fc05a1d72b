import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'node:test';
import { sendFile } from '../src/http/body.ts';

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
  // Two big downloads end with their last chunks still on the socket; smaller ones, in the same 512 KiB buffers, start meanwhile.
  const send = (i: number) => {
    const response = new SlowResponse();
    sendFile(response as unknown as ServerResponse, files[i]!.path, { start: 0, end: files[i]!.bytes.byteLength - 1 }, undefined);
    return response;
  };
  const big = [send(0), send(1)];
  // Take each big download's writes until it has read its last chunk and let go of the file: its last writes are still on the socket.
  for (const response of big) {
    for (;;) {
      await until(() => response.pending.length > 0 || response.ended);
      if (response.ended) break;
      response.take();
    }
    assert.ok(response.pending.length > 0, 'the last chunk is still the socket’s');
  }
  const small = [send(2), send(3), send(4)];
  for (const response of small) {
    await until(() => response.ended);
    while (response.take());
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
