/**
 * The TUI's drawing thread. ink and React live here, with their own heap:
 * a frame of a 160x50 terminal makes about 16 MiB of short-lived objects,
 * and on the thread that answers the servers that (and its garbage
 * collections) delayed every answer in a rush. The main thread (app.ts)
 * keeps the model and the keyboard, sends what changed a few times a
 * second, and writes what this thread draws to the terminal.
 */
import { EventEmitter } from 'node:events';
import { readlinkSync } from 'node:fs';
import { constants, setPriority } from 'node:os';
import { basename } from 'node:path';
import { PassThrough } from 'node:stream';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { render, useStdout } from 'ink';
import { useEffect, useState } from 'react';
import { LabModel } from '../model.ts';
import type { DrawerData, EventLoopSample, ToDrawer } from './app.ts';
import { busyBetween, DONE, framePace, WRITTEN } from './pace.ts';
import { Screen, type Serving } from './screen.tsx';

/** A terminal for ink: what it writes in one turn goes to the main thread as one message. */
class Terminal extends EventEmitter {
  readonly isTTY: boolean;
  columns: number;
  rows: number;
  readonly #port: MessagePort;
  readonly #shared: Int32Array;
  #pending: string[] = [];
  #sent = 0;

  constructor(port: MessagePort, shared: Int32Array, size: { columns: number; rows: number; isTTY: boolean }) {
    super();
    this.#port = port;
    this.#shared = shared;
    this.columns = size.columns;
    this.rows = size.rows;
    this.isTTY = size.isTTY;
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.#pending.length === 0) queueMicrotask(() => this.flush());
    this.#pending.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  }

  flush(): void {
    if (this.#pending.length === 0) return;
    const text = this.#pending.join('');
    this.#pending = [];
    if (text === '') return;
    this.#sent += 1;
    this.#port.postMessage(text);
  }

  /** Output sent that the real terminal has not taken yet: its reader is slow, or has stopped. */
  behind(): boolean {
    return Atomics.load(this.#shared, WRITTEN) < this.#sent;
  }

  resize(columns: number, rows: number): void {
    this.columns = columns;
    this.rows = rows;
    this.emit('resize');
  }
}

/** What the main thread said last, folded. */
class Lab {
  readonly model = new LabModel();
  readonly loading: string;
  readonly frameMs: number;
  version = 0;
  now: number;
  serving: Serving | undefined;
  status: string | undefined;
  loop: EventLoopSample = { idle: 0, active: 0 };
  /** What ink took to draw the last frame (ms). */
  drawMs = 0;

  constructor(data: DrawerData) {
    this.loading = data.loading;
    this.frameMs = data.frameMs;
    this.now = data.now;
  }

  take(message: Extract<ToDrawer, { kind: 'tick' }>): void {
    if (message.changes) this.model.merge(message.changes);
    this.version = message.version;
    this.now = message.now;
    this.serving = message.serving;
    this.status = message.status;
    this.loop = message.loop;
  }

  frame() {
    return { version: this.version, serving: this.serving, status: this.status, snapshot: this.model.snapshot(), now: this.now };
  }
}

/** Columns and rows of the terminal, following resizes. */
function useSize(): { width: number; height: number } {
  const { stdout } = useStdout();
  const read = () => ({ width: stdout.columns || 80, height: stdout.rows || 24 });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const onResize = () => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout]);
  return size;
}

/** The live screen; `last` draws what was said last at once, for the frame left on screen. */
function Live({ lab, last = false }: { readonly lab: Lab; readonly last?: boolean }) {
  const size = useSize();
  const [live, setFrame] = useState(() => ({ n: 0, ...lab.frame() }));
  const frame = last ? { ...live, ...lab.frame() } : live;
  useEffect(() => {
    // Redraw when something changed, and once a second anyway for the clocks;
    // never more often than frameMs however many events arrive, nor than the
    // pace that keeps drawing to a small share of the machine.
    const { frameMs } = lab;
    let drawnAt = Date.now();
    let drawn = live.version;
    let loopAt = lab.loop;
    const timer = setInterval(() => {
      // The last frame has not reached the terminal: the next would only wait behind it.
      if (terminal.behind()) return;
      const since = Date.now() - drawnAt;
      if (since < framePace(frameMs, lab.drawMs, busyBetween(loopAt, lab.loop)) - frameMs / 2) return;
      const loading = lab.serving === undefined;
      if (lab.version === drawn && !loading && since < 1000) return;
      loopAt = lab.loop;
      drawn = lab.version;
      drawnAt = Date.now();
      setFrame((previous) => ({ n: previous.n + 1, ...lab.frame() }));
    }, frameMs);
    return () => clearInterval(timer);
  }, [lab]);
  return (
    <Screen
      serving={frame.serving}
      loading={lab.loading}
      snapshot={frame.snapshot}
      now={frame.now}
      width={size.width}
      height={size.height}
      frame={frame.n}
      {...(frame.status !== undefined ? { status: frame.status } : {})}
    />
  );
}

/**
 * Give this thread the lowest priority. On Linux each thread has a nice
 * value of its own: drawing then yields to the main thread whenever both
 * want a core (a rush on a small machine), and loses nothing while one is
 * free. The thread's id comes from /proc/thread-self, read synchronously:
 * an asynchronous read would run on a thread of libuv's pool, and name that
 * thread. Without /proc (not Linux), drawing keeps the priority it has.
 */
function lowerPriority(): void {
  try {
    const tid = Number(basename(readlinkSync('/proc/thread-self')));
    if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, constants.priority.PRIORITY_LOW);
  } catch {
    // No /proc, or no right to change it: nothing is lost but the priority.
  }
}

lowerPriority();
const data = workerData as DrawerData;
const shared = new Int32Array(data.shared);
/** Tell the main thread, waiting in unmount(), that nothing more will come from here. */
function signalDone(): void {
  Atomics.store(shared, DONE, 1);
  Atomics.notify(shared, DONE);
}
// However this thread ends (a failure included), a wait for it ends too.
process.on('exit', signalDone);
const terminal = new Terminal(data.output, shared, data.size);
const lab = new Lab(data);
const instance = render(<Live lab={lab} />, {
  // ink reads what it needs of these; the keyboard stays with the main thread.
  stdout: terminal as unknown as NodeJS.WriteStream,
  stdin: Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.ReadStream,
  exitOnCtrlC: false,
  patchConsole: false,
  maxFps: 1000 / data.frameMs,
  onRender: ({ renderTime }) => {
    lab.drawMs = renderTime;
  },
});

parentPort!.on('message', (message: ToDrawer) => {
  switch (message.kind) {
    case 'tick':
      lab.take(message);
      break;
    case 'resize':
      terminal.resize(message.columns, message.rows);
      break;
    case 'unmount':
      // The last frame, with what was said last, stays on screen (ink renders
      // synchronously); the main thread waits for it, then shows the cursor.
      try {
        instance.rerender(<Live lab={lab} last />);
        instance.unmount();
        terminal.flush();
      } finally {
        signalDone();
        parentPort!.close();
      }
      break;
  }
});
