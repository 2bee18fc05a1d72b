import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nonBlocking, openTarget } from '../src/ui/output.ts';
import { childOf } from './bench/processes.ts';

// src/ui/output.ts through real pipes: a child process writes its stdout
// through FdOutput while this process reads it, or stops reading.

const CHILD = fileURLToPath(new URL('./support/output-child.ts', import.meta.url));
const LINE = (i: number) => `line ${i} ${'x'.repeat(90)}`;


/**
 * The child, with its stdout not read until `read()`, and what it says (in a
 * file of its own: stdout may be stalled). Node gives a child it spawns a
 * non-blocking socket for stdout; `terminal` gives it a pseudo-terminal
 * instead (through script(1)), blocking as a user's terminal is, which
 * stalls once script's own output is not read.
 */
function child(t: TestContext, args: string[], options: { terminal?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'dispatch-output-'));
  const file = join(dir, 'said.ndjson');
  writeFileSync(file, '');
  const command = [process.execPath, '--import', 'tsx', CHILD, file, ...args];
  const quoted = command.map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(' ');
  const proc = options.terminal
    ? spawn('script', ['-qfec', `stty -onlcr; exec ${quoted}`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    // Under script, the writer is script's child: it goes first, then script and the folder.
    const writer = options.terminal ? childOf(proc.pid!) : undefined;
    if (writer) process.kill(writer, 'SIGKILL');
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const chunks: Buffer[] = [];
  // Paused, with a 'readable' listener: Node reads up to its high-water mark, then leaves the rest in the pipe
  // (and does not let a child's exit resume the stream, which would throw away what is buffered).
  let reading = false;
  const take = () => {
    for (let chunk = proc.stdout.read() as Buffer | null; chunk !== null; chunk = proc.stdout.read() as Buffer | null) chunks.push(chunk);
  };
  proc.stdout.on('readable', () => {
    if (reading) take();
  });
  const messages = () =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const exited = once(proc, 'exit') as Promise<[number | null, string | null]>;
  return {
    proc,
    messages,
    exited,
    /** Start reading stdout; resolves with all of it once the child has closed it. */
    read(): Promise<string> {
      reading = true;
      const ended = proc.stdout.readableEnded ? Promise.resolve() : once(proc.stdout, 'end');
      take();
      return ended.then(() => Buffer.concat(chunks).toString('utf8'));
    },
    /** What this process has taken off the pipe so far, read or not. */
    buffered(): number {
      return proc.stdout.readableLength + chunks.reduce((sum, c) => sum + c.byteLength, 0);
    },
    async until(key: string, limitMs = 30_000): Promise<Record<string, unknown>> {
      for (let waited = 0; waited < limitMs; waited += 20) {
        const found = messages().find((m) => key in m);
        if (found) return found;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`the child never said ${key}; it said ${JSON.stringify(messages())}`);
    },
  };
}

describe('stdout written off the JavaScript thread (FdOutput)', () => {
  for (const terminal of [true, false]) {
    test(`a reader that stops reading never holds the writer up, and gets every line in order once it reads (${terminal ? 'a terminal, blocking' : 'a socket, non-blocking'})`, async (t) => {
      const lines = 20_000; // 2 MB: many times what a pipe or a terminal holds
      const c = child(t, [String(lines), '-'], { terminal });
      // With writes made on the JavaScript thread, the child would block in the first full write and never say this.
      const stalled = await c.until('stalled');
      assert.deepEqual([stalled.terminal, stalled.nonblocking], [terminal, !terminal], 'the descriptor is as the test says');
      // A terminal is opened again, non-blocking, for dispatch alone (its fd 1 stays blocking, as the shell left it).
      assert.equal(stalled.mode, 'direct');
      assert.ok((stalled.ticks as number) > 0, 'the child\'s timers ran while it wrote');
      assert.ok(c.buffered() < lines * 100, `the reader had taken ${c.buffered()} bytes of ${lines * 100} when every line was queued`);
      const text = await c.read();
      const [code] = await c.exited;
      assert.equal(code, 0);
      const got = text.split('\n').slice(0, -1);
      assert.deepEqual(got, [...Array.from({ length: lines }, (_, i) => LINE(i)), ...Array.from({ length: 100 }, (_, i) => `after ${i}`)]);
      assert.ok(c.messages().some((m) => m.done === true));
    });
  }

  test('past the cap, lines are dropped, and a notice in their place says how many', async (t) => {
    const lines = 20_000;
    const c = child(t, [String(lines), '200000']);
    await c.until('stalled');
    const text = await c.read();
    assert.equal((await c.exited)[0], 0);
    const got = text.split('\n').slice(0, -1);
    const notice = got.findIndex((line) => line.startsWith('-- '));
    assert.ok(notice > 0, 'a notice');
    // What was kept is the first lines, in order; the notice counts the rest; then what came after the reader read again.
    assert.deepEqual(got.slice(0, notice), Array.from({ length: notice }, (_, i) => LINE(i)));
    assert.equal(got[notice], `-- ${lines - notice} dropped`);
    assert.deepEqual(got.slice(notice + 1), Array.from({ length: 100 }, (_, i) => `after ${i}`));
  });

  test('a reader that goes away (EPIPE): said once, and the writer goes on without failing', async (t) => {
    const c = child(t, ['20000']);
    c.proc.stdout.destroy();
    const closed = await c.until('closed');
    assert.equal(closed.closed, 'EPIPE');
    const [code] = await c.exited;
    assert.equal(code, 0, `exit 0; it said ${JSON.stringify(c.messages())}`);
    assert.equal(c.messages().filter((m) => 'closed' in m).length, 1);
    assert.ok(c.messages().some((m) => m.done === true), 'it went on to the end');
  });

  test('what is written to never waits: files as they are, a pipe opened again non-blocking, the pool only without /proc', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'dispatch-output-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const devNull = openSync('/dev/null', 'w');
    assert.deepEqual(openTarget(devNull), { fd: devNull, mode: 'direct' });
    closeSync(devNull);
    const file = openSync(join(dir, 'log'), 'w');
    assert.deepEqual(openTarget(file), { fd: file, mode: 'direct' }, 'a regular file: the same descriptor, so its offset and O_APPEND hold');
    closeSync(file);
    // A blocking pipe, as a shell gives one, before Node has touched it.
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, constants.O_WRONLY);
    const target = openTarget(writer);
    assert.equal(target.mode, 'direct');
    assert.notEqual(target.fd, writer, 'a description of its own');
    assert.deepEqual([nonBlocking(writer), nonBlocking(target.fd)], [false, true], 'non-blocking for dispatch only');
    for (const fd of [target.fd, writer, reader]) closeSync(fd);
    assert.deepEqual(openTarget(9999), { fd: 9999, mode: 'pool' }, 'unknown: the safe way');
  });

  test('a process that exits while its reader takes nothing still exits, having written what there was room for', async (t) => {
    const c = child(t, ['20000', '-', 'exit']);
    const [code] = await Promise.race([c.exited, new Promise<[string]>((resolve) => setTimeout(() => resolve(['still running after 20 s']), 20_000))]);
    assert.equal(code, 0);
    const text = await c.read();
    const got = text.split('\n').slice(0, -1);
    assert.ok(got.length > 0 && got.length < 20_000, `some lines, not all (${got.length})`);
    assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => LINE(i)), 'the first lines, in order');
  });

  test('what is queued when the process exits is written, synchronously, in order', async (t) => {
    const c = child(t, ['5000', '-', 'exit']);
    const text = await c.read();
    assert.equal((await c.exited)[0], 0);
    assert.deepEqual(text.split('\n').slice(0, -1), Array.from({ length: 5000 }, (_, i) => LINE(i)));
  });
});
