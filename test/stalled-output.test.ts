import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { childOf, freePort } from './bench/processes.ts';
import { FIRMWARE_HEADERS, send } from './fleet/http.ts';
import { loopbackAddress } from './fleet/simulator.ts';

// A user's SSH session stalls (a laptop shut, a network gone), or a pipe's
// reader stops reading: dispatch's output then has nowhere to go. The lab
// must go on answering its servers, and the output comes out, in order, once
// the reader reads again.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const SERVERS = 1500;
/** Long names make long log lines: 1,500 servers' lines are far more than a pipe, a socket or a terminal holds. */
const NAME = (i: number) => `w${String(i).padStart(4, '0')}-${'x'.repeat(180)}.efi`;

function lab(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'dispatch-stalled-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'workloads'));
  for (let i = 0; i < SERVERS; i += 1) writeFileSync(join(dir, 'workloads', NAME(i)), `workload ${i}\n`);
  return dir;
}

async function dispatchArgs(dir: string, mode: string) {
  const port = await freePort();
  const args = [MAIN, '--dir', join(dir, 'workloads'), '--reports', join(dir, 'reports'), '--state-dir', join(dir, 'state'), '--bind', `127.0.0.1:${port}`, '--no-mdns', '--log', mode];
  return { port, args };
}

/**
 * Every server's HEAD, twenty at a time (or five, `pauseMs` apart): each
 * must be answered (10 s at most each) while nothing reads dispatch's output.
 */
async function headsFromEveryServer(port: number, pauseMs = 0): Promise<void> {
  const url = `http://127.0.0.1:${port}/dispatch`;
  for (let i = 0; ; i += 1) {
    const ready = await send({ url: `http://127.0.0.1:${port}/api/jobs`, method: 'GET', timeoutMs: 500 }).catch(() => undefined);
    if (ready?.status === 200) break;
    if (i === 50) throw new Error('dispatch never answered /api/jobs');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < SERVERS; i = next++) {
      const answer = await send({ url, method: 'HEAD', localAddress: loopbackAddress(i), headers: { ...FIRMWARE_HEADERS }, timeoutMs: 10_000 });
      assert.equal(answer.status, 200, `server ${i}`);
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  };
  await Promise.all(Array.from({ length: pauseMs > 0 ? 5 : 20 }, worker));
}

/**
 * dispatch on a pseudo-terminal whose output nobody reads until `read()`:
 * script(1) copies what dispatch shows into a FIFO, and once the FIFO is
 * full, script stops reading the terminal, and the terminal fills. As when
 * an SSH session stalls (Node writes to a terminal synchronously).
 */
function onStalledTerminal(t: TestContext, dir: string, args: readonly string[], stty: string) {
  const fifo = join(dir, 'screen');
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY);
  t.after(() => closeSync(reader));
  const command = [process.execPath, '--import', 'tsx', ...args].map((word) => `'${word}'`).join(' ');
  const proc = spawn('script', ['-qfec', `stty ${stty}; exec env -u CI -u CONTINUOUS_INTEGRATION ${command}`, '/dev/null'], { cwd: ROOT, stdio: ['ignore', writer, 'ignore'] });
  closeSync(writer);
  t.after(() => proc.kill('SIGKILL'));
  const exited = once(proc, 'exit');
  let text = '';
  const buffer = Buffer.alloc(1 << 16);
  /** Take what is there; true once the terminal has closed. */
  const drain = () => {
    for (;;) {
      try {
        const n = readSync(reader, buffer, 0, buffer.byteLength, null);
        if (n === 0) return true;
        text += buffer.toString('utf8', 0, n);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return false;
        throw err;
      }
    }
  };
  const dispatch = () => {
    const pid = childOf(proc.pid!);
    assert.ok(pid, 'dispatch runs under script');
    return pid;
  };
  t.after(() => {
    const pid = childOf(proc.pid!);
    if (pid) process.kill(pid, 'SIGKILL');
  });
  /** Read until the terminal closes (30 s at most). */
  const untilClosed = async () => {
    let ended = false;
    for (let i = 0; i < 600 && !ended; i += 1) {
      ended = drain();
      if (!ended) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await exited;
    assert.ok(ended, 'the terminal closed');
    return text;
  };
  return {
    /** Read again for a while, and what came in that time. */
    async resume(ms: number): Promise<string> {
      const from = text.length;
      for (let waited = 0; waited < ms; waited += 50) {
        drain();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return text.slice(from);
    },
    /** SIGTERM dispatch (not script: it would hang the terminal up), and read until the terminal closes. */
    async stop(): Promise<string> {
      process.kill(dispatch(), 'SIGTERM');
      return untilClosed();
    },
    /** SIGTERM dispatch while still not reading: it must end all the same (10 s at most); then the rest is read. */
    async stopStalled(): Promise<string> {
      // The FIFO is full when script waits to write to it (the kernel names the wait after the pipe write).
      const blocked = () => /pipe_write/.test(readFileSync(`/proc/${proc.pid!}/wchan`, 'utf8'));
      for (let i = 0; i < 400 && !blocked(); i += 1) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(blocked(), 'script waits to write to the full FIFO: the terminal takes nothing');
      const pid = dispatch();
      process.kill(pid, 'SIGTERM');
      // Gone, or a zombie script cannot reap while it waits to write to the FIFO.
      const ended = () => {
        try {
          return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
        } catch {
          return true;
        }
      };
      for (let i = 0; i < 200 && !ended(); i += 1) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(ended(), 'dispatch ended while its terminal took nothing');
      return untilClosed();
    },
  };
}

describe('output nobody reads never stops the lab', () => {
  for (const mode of ['plain', 'json'] as const) {
    test(`--log ${mode} on a terminal that stops being read: every server answered, then every line`, async (t) => {
      const dir = lab(t);
      const { port, args } = await dispatchArgs(dir, mode);
      const terminal = onStalledTerminal(t, dir, args, '-onlcr');
      await headsFromEveryServer(port);
      await terminal.resume(500);
      const text = await terminal.stop();
      assert.ok(text.length > 256 * 1024, `more output (${text.length} bytes) than the FIFO and the terminal hold`);
      const assigned = text
        .split('\n')
        .filter((line) => line.includes('assigned to'))
        .map((line) => (mode === 'json' ? (JSON.parse(line) as { server: string }).server : /assigned to (\S+)/.exec(line)![1]));
      assert.deepEqual(new Set(assigned), new Set(Array.from({ length: SERVERS }, (_, i) => loopbackAddress(i))));
      assert.match(text, /SIGTERM: stopping/);
    });
  }

  test('the TUI on a terminal that stops being read: every server answered; the screen resumes, and gives the terminal back', async (t) => {
    const dir = lab(t);
    const { port, args } = await dispatchArgs(dir, 'tui');
    // A big terminal: a few frames fill what the FIFO and the terminal hold.
    const terminal = onStalledTerminal(t, dir, args, 'cols 400 rows 200');
    // Spread over a few seconds, for frames enough to fill them many times over.
    await headsFromEveryServer(port, 15);
    // What the FIFO and the terminal held first; then new frames come (once a second at least, for the clocks).
    await terminal.resume(1000);
    const resumed = await terminal.resume(2500);
    const frame = '\x1b[?2026h'; // each frame opens a synchronized update
    assert.ok(resumed.split(frame).length - 1 >= 2, `frames drawn again once the terminal reads: ${resumed.split(frame).length - 1}`);
    const screen = await terminal.stop();
    assert.match(screen, /SIGTERM: stopping/, 'the last frame shows the stop');
    assert.ok(screen.includes('\x1b[?25h'), 'the cursor is shown again');
  });

  for (const mode of ['plain', 'tui'] as const) {
    test(`--log ${mode}: a SIGTERM while the terminal still takes nothing ends dispatch all the same`, async (t) => {
      const dir = lab(t);
      const { port, args } = await dispatchArgs(dir, mode);
      const terminal = onStalledTerminal(t, dir, args, mode === 'tui' ? 'cols 400 rows 200' : '-onlcr');
      await headsFromEveryServer(port, mode === 'tui' ? 15 : 0);
      await terminal.stopStalled();
    });
  }
});
