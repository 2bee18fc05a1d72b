import { setFlagsFromString } from 'node:v8';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort, type WorkerOptions } from 'node:worker_threads';
import { onExit } from 'signal-exit';
import type { Clock, Queue } from '../../jobs/index.ts';
import type { Log } from '../../log.ts';
import { logQueue, plainLog } from '../log.ts';
import { LabModel, type LabChanges } from '../model.ts';
import { streamOutput, type Output } from '../output.ts';
import { DONE, WRITTEN } from './pace.ts';
import type { Serving } from './screen.tsx';

export interface TuiOptions {
  /** The terminal: its size, and its resizes. */
  readonly stdout: NodeJS.WriteStream;
  /** Where frames and lines go (default: written to `stdout`). */
  readonly out?: Output;
  readonly stdin: NodeJS.ReadStream;
  readonly clock: Pick<Clock, 'now'>;
  /** What is loading, until `serving()` is called. */
  readonly loading: string;
  /** `q` or Ctrl-C. */
  readonly onQuit: () => void;
  /** Shortest time between two frames (default 100 ms: at most 10 a second). */
  readonly frameMs?: number;
}

/** An event loop's running totals, as `performance.eventLoopUtilization()` gives them (ms). */
export interface EventLoopSample {
  readonly idle: number;
  readonly active: number;
}

/** What the drawing thread starts with. */
export interface DrawerData {
  readonly output: MessagePort;
  /** An Int32Array's memory, with the slots DONE and WRITTEN (pace.ts). */
  readonly shared: SharedArrayBuffer;
  readonly size: { readonly columns: number; readonly rows: number; readonly isTTY: boolean };
  readonly loading: string;
  readonly frameMs: number;
  readonly now: number;
}

/** What the main thread tells the drawing thread. */
export type ToDrawer =
  | {
      readonly kind: 'tick';
      /** Moves whenever there is something new to draw. */
      readonly version: number;
      readonly now: number;
      readonly changes: LabChanges | undefined;
      readonly serving: Serving | undefined;
      readonly status: string | undefined;
      /** The main thread's event loop: frames wait while it is busy. */
      readonly loop: EventLoopSample;
    }
  | { readonly kind: 'resize'; readonly columns: number; readonly rows: number }
  | { readonly kind: 'unmount' };

/** How long unmounting waits for the drawing thread's last frame (it may still be loading ink). */
const UNMOUNT_WAIT_MS = 5_000;

const SHOW_CURSOR = '\x1b[?25h';

/**
 * The drawing thread's heap, in MB. With Node's own limits (those of the
 * main thread) its heap grew to 90 MB for 32 MB of live data: V8 lets a heap
 * whose limit is large grow four times over after each full collection, and
 * gave its young generation 32 MB. Under a limit this far below Node's, V8
 * grows the heap by less than twice (its MemoryController), and ink's
 * short-lived objects die in 4 MB semi-spaces instead of 16. The bench's
 * TUI fleet (1,000 servers drawn on a 160x50 terminal) then peaks at
 * 185-194 MB of RSS instead of 243-257 MB, for the same CPU. Its live data
 * was 32 MB (yoga's 16 among it), and the model of 100,000 finished jobs
 * holds 62 MB, so 512 leaves room for labs far larger than that; a drawing
 * thread that ran out would stop, and the run would go on with plain lines
 * (Tui's #fail).
 */
export const DRAWER_HEAP = { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 12 } as const;

/**
 * How the drawing thread starts: its data, its environment, its heap. A
 * `--max-semi-space-size` given to node (the dispatch command runs with 16)
 * wins over the young-generation limit a worker asks for, so it is cleared
 * first. V8 sizes a heap when it makes the isolate: the main thread's was
 * sized at startup and keeps its size (measured on Node 20 and 24), so
 * clearing the flag now reaches only isolates made from here on.
 */
export function drawerOptions(data: DrawerData, env: NodeJS.ProcessEnv): WorkerOptions {
  setFlagsFromString('--max-semi-space-size=0');
  return { workerData: data, transferList: [data.output], env, resourceLimits: DRAWER_HEAP };
}

/** Start the drawing thread: drawer.js (which loads worker.js) next to the built app.js. */
function startDrawer(data: DrawerData, env: NodeJS.ProcessEnv): Worker {
  const options = drawerOptions(data, env);
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./drawer.js', import.meta.url), options);
  // Run from the TypeScript source (the tests, through tsx): Node 22 and later
  // give a worker the parent's `--import tsx`, Node 20 does not, so the
  // worker loads its module through tsx's API.
  const source = JSON.stringify(new URL('./drawer.ts', import.meta.url).href);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${tsx}).then((tsx) => tsx.tsImport(${source}, ${source}))`, { ...options, eval: true });
}

/**
 * What the drawing thread's environment is: this one, but ink draws live
 * (it draws only the last frame when CI or CONTINUOUS_INTEGRATION is set:
 * nobody watches; the TUI runs only on a terminal or when asked for, which
 * is somebody watching), and React runs its production builds unless the
 * user set NODE_ENV (the development builds check every render and keep
 * timing marks for a profiler: 7.0-7.8 s of CPU for a 1,000-server fleet
 * with the TUI on, against 6.4-6.6 s).
 */
export function drawingEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { CI: _ci, CONTINUOUS_INTEGRATION: _continuous, ...rest } = env;
  return { ...rest, NODE_ENV: env.NODE_ENV ?? 'production' };
}

/**
 * The ink TUI. It shows what queue events and log lines said (through
 * LabModel) and owns nothing else: quitting is the caller's business.
 * ink and React draw in a worker thread of their own (worker.tsx): this
 * thread answers the servers, and drawing a frame there made garbage enough
 * to delay its answers in a rush. Here stay the model (events arrive here),
 * the keyboard, and the writes to the terminal.
 */
export class Tui {
  readonly #options: TuiOptions;
  readonly #model = new LabModel();
  readonly #worker: Worker;
  readonly #output: MessagePort;
  readonly #shared = new Int32Array(new SharedArrayBuffer(8));
  readonly #out: Output;
  readonly #ticker: NodeJS.Timeout;
  #serving: Serving | undefined;
  #queue: Queue | undefined;
  #status: string | undefined;
  #version = 0;
  #sentVersion = -1;
  #sentAt = 0;
  #unmounted = false;
  /** The drawing thread failed: the terminal is given back and the run goes on without a screen. */
  #broken = false;
  /** Where log lines go once drawing failed. */
  readonly #plain: Log;
  /** Stops giving the terminal back when dispatch dies. */
  readonly #removeExitHook: () => void;
  readonly #onResize = () => this.#post({ kind: 'resize', columns: this.#options.stdout.columns || 80, rows: this.#options.stdout.rows || 24 });
  /** What is typed arrives as it was sent: a key is a chunk of its own, and a paste or an escape sequence is never taken for one. */
  readonly #onKeys = (data: Buffer | string) => {
    const keys = data.toString();
    if (keys === 'q' || keys === 'Q' || keys === '\x03') this.#options.onQuit();
  };

  constructor(options: TuiOptions) {
    this.#options = options;
    this.#out = options.out ?? streamOutput(options.stdout);
    this.#plain = plainLog((line) => this.#out.write(`${line}\n`), options.clock);
    const frameMs = options.frameMs ?? 100;
    const { port1, port2 } = new MessageChannel();
    this.#output = port1;
    const data: DrawerData = {
      output: port2,
      shared: this.#shared.buffer as SharedArrayBuffer,
      size: { columns: options.stdout.columns || 80, rows: options.stdout.rows || 24, isTTY: options.stdout.isTTY === true },
      loading: options.loading,
      frameMs,
      now: options.clock.now(),
    };
    this.#worker = startDrawer(data, drawingEnv(process.env));
    this.#output.on('message', (text: string) => this.#write(text));
    // Neither keeps dispatch running: the server does, while it serves. (A
    // port's 'message' listener refs it, so this comes after.)
    this.#worker.unref();
    this.#output.unref();
    this.#worker.on('error', (err) => this.#fail(err));
    this.#worker.on('exit', (code) => {
      if (!this.#unmounted) this.#fail(new Error(`the drawing thread exited (${code})`));
    });
    options.stdout.on('resize', this.#onResize);
    const { stdin } = options;
    if (stdin.isTTY && typeof stdin.setRawMode === 'function') {
      stdin.setRawMode(true);
      stdin.on('data', this.#onKeys);
      stdin.resume();
    }
    // Ticks tell the drawing thread what changed and how busy this thread is;
    // it decides when to draw. At most one message per frameMs.
    this.#ticker = setInterval(() => this.#tick(), frameMs).unref();
    // A crash or a fatal signal must not leave the cursor hidden and the
    // keyboard raw. Signals never reach the drawing thread, and Node resets
    // the terminal only on exit, SIGINT and SIGTERM.
    this.#removeExitHook = onExit(() => this.#giveBack());
  }

  /** Start showing the jobs of `queue`; returns the unsubscribe. */
  attach(queue: Queue, serving: Serving): () => void {
    this.#model.load(queue.list());
    this.#serving = serving;
    this.#queue = queue;
    if (this.#broken) this.#logQueue(queue);
    this.#bump();
    return queue.subscribe((event) => this.#model.apply(event));
  }

  /** Log lines go to the message area, not to stdout (that would tear the frame); as plain lines if drawing failed. */
  readonly log: Log = (subsystem, message) => {
    if (this.#broken) this.#plain(subsystem, message);
    else this.#model.message(this.#options.clock.now(), subsystem, message);
  };

  /** Replace the hint line, e.g. while stopping. */
  status(text: string): void {
    this.#status = text;
    this.#bump();
  }

  /**
   * Give the terminal back: the last frame stays on screen, then the cursor
   * is shown and the keyboard is back in line mode. Waits (up to a few
   * seconds) for the drawing thread's last frame, so what is printed next
   * comes after it.
   */
  unmount(): void {
    if (this.#unmounted) return;
    this.#unmounted = true;
    this.#removeExitHook();
    this.#stop();
    this.#stopKeys();
    if (!this.#broken) {
      this.#tick(true);
      this.#worker.postMessage({ kind: 'unmount' } satisfies ToDrawer);
      Atomics.wait(this.#shared, DONE, 0, UNMOUNT_WAIT_MS);
      for (let next = receiveMessageOnPort(this.#output); next; next = receiveMessageOnPort(this.#output)) this.#write(next.message as string);
    }
    this.#output.close();
    void this.#worker.terminate();
    this.#out.write(SHOW_CURSOR);
  }

  /**
   * A frame from the drawing thread, to the terminal. The drawing thread
   * draws no new frame until the terminal has taken this one: a terminal
   * that stops reading (an SSH session stalled) holds frames back there,
   * not in memory here. After a failure, a frame still on its way would
   * cover the notice and hide the cursor again.
   */
  #write(text: string): void {
    if (this.#broken) return;
    this.#out.write(text, () => {
      Atomics.add(this.#shared, WRITTEN, 1);
    });
  }

  #tick(force = false): void {
    const version = this.#version + this.#model.version;
    const at = performance.now();
    // Nothing new: the drawing thread still needs the clock about once a second.
    if (!force && version === this.#sentVersion && at - this.#sentAt < 500) return;
    this.#sentVersion = version;
    this.#sentAt = at;
    const now = this.#options.clock.now();
    const { idle, active } = performance.eventLoopUtilization();
    this.#post({ kind: 'tick', version, now, changes: this.#model.takeChanges(), serving: this.#serving, status: this.#status, loop: { idle, active } });
  }

  #post(message: ToDrawer): void {
    if (!this.#broken) this.#worker.postMessage(message);
  }

  /** Ticks and resizes off. */
  #stop(): void {
    clearInterval(this.#ticker);
    this.#options.stdout.off('resize', this.#onResize);
  }

  /** The keyboard back in line mode, and no longer read. */
  #stopKeys(): void {
    const { stdin } = this.#options;
    if (stdin.listenerCount('data') === 0 && !stdin.isRaw) return;
    stdin.off('data', this.#onKeys);
    if (stdin.isTTY && typeof stdin.setRawMode === 'function' && this.#lineModeNow()) stdin.setRawMode(false);
    stdin.pause();
  }

  /**
   * Whether line mode may come back now. Node (libuv) changes the mode once
   * what was written has left (TCSADRAIN): a pseudo-terminal (SSH) never
   * makes that wait, but a serial console whose output is held (flow
   * control) does, for as long as it is held. Node puts the mode back as it
   * found it when the process exits anyway, without waiting.
   */
  #lineModeNow(): boolean {
    return this.#out.stalled?.() !== true;
  }

  /** Dispatch is dying with the TUI on screen: line mode and the cursor back, synchronously. */
  #giveBack(): void {
    if (this.#unmounted) return;
    const { stdin } = this.#options;
    if (stdin.isRaw && typeof stdin.setRawMode === 'function' && this.#lineModeNow()) stdin.setRawMode(false);
    this.#out.write(SHOW_CURSOR);
    this.#out.flushSync();
  }

  /**
   * The drawing thread failed: the cursor back, the log lines the model
   * holds (some may never have been drawn), then plain lines from here on.
   * q still stops dispatch.
   */
  #fail(err: Error): void {
    if (this.#broken || this.#unmounted) return;
    this.#broken = true;
    this.#stop();
    this.#out.write(`${SHOW_CURSOR}\n`);
    this.#plain('dispatch', `the TUI stopped (${err.message}); its last log lines, then the log as plain lines:`);
    for (const line of this.#model.snapshot().messages) this.#out.write(`${line}\n`);
    if (this.#queue) this.#logQueue(this.#queue);
  }

  #logQueue(queue: Queue): void {
    logQueue(queue, (line) => this.#out.write(`${line}\n`));
  }

  #bump(): void {
    this.#version += 1;
  }
}
