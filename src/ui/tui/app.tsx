import { render, useInput, useStdin, useStdout, type Instance } from 'ink';
import { useEffect, useState } from 'react';
import type { Clock, Queue } from '../../jobs/index.ts';
import type { Log } from '../../log.ts';
import { LabModel } from '../model.ts';
import { Screen, type Serving } from './screen.tsx';

export interface TuiOptions {
  readonly stdout: NodeJS.WriteStream;
  readonly stdin: NodeJS.ReadStream;
  readonly clock: Pick<Clock, 'now'>;
  /** What is loading, until `serving()` is called. */
  readonly loading: string;
  /** `q` or Ctrl-C. */
  readonly onQuit: () => void;
  /** Shortest time between two frames (default 100 ms: at most 10 a second). */
  readonly frameMs?: number;
}

/** Frames never come further apart than this, however slow drawing is: the screen still follows. */
const SLOWEST_FRAME_MS = 500;

/** The event loop busier than this (share of the time it ran code) is a server-side rush: frames wait. */
const BUSY_LOOP = 0.75;

/**
 * How long to wait between two frames when drawing one took `drawMs` and the
 * event loop was busy for `loopBusy` (0 to 1) of the time since the last one:
 * at least `frameMs`, and twenty times what ink took to draw the last frame,
 * so that drawing (React's share and the garbage included) stays a small
 * share of the JavaScript thread that also answers the servers. A 160x50
 * terminal over a busy fleet takes ink 10 to 20 ms a frame: 3 to 5 frames a
 * second then. While the loop is nearly always busy (a thousand servers
 * booting), 2 frames a second: the servers come first.
 */
export function framePace(frameMs: number, drawMs: number, loopBusy = 0): number {
  if (loopBusy > BUSY_LOOP) return Math.max(frameMs, SLOWEST_FRAME_MS);
  return Math.max(frameMs, Math.min(SLOWEST_FRAME_MS, 20 * drawMs));
}

const SHOW_CURSOR = '\x1b[?25h';

/**
 * The ink TUI. It draws what queue events and log lines said (through
 * LabModel) and owns nothing else: quitting is the caller's business.
 */
export class Tui {
  readonly #options: TuiOptions;
  readonly #model = new LabModel();
  readonly #instance: Instance;
  #serving: Serving | undefined;
  #status: string | undefined;
  /** What ink took to draw the last frame (ms). */
  #drawMs = 0;
  #version = 0;
  #unmounted = false;
  /** A crash must not leave the cursor hidden: ink restores it only when it unmounts. */
  readonly #restore = () => {
    if (!this.#unmounted) this.#options.stdout.write(SHOW_CURSOR);
  };

  constructor(options: TuiOptions) {
    this.#options = options;
    this.#instance = render(<Live tui={this} frameMs={options.frameMs ?? 100} />, {
      stdout: options.stdout,
      stdin: options.stdin,
      exitOnCtrlC: false,
      patchConsole: false,
      maxFps: 1000 / (options.frameMs ?? 100),
      onRender: ({ renderTime }) => {
        this.#drawMs = renderTime;
      },
    });
    process.once('exit', this.#restore);
  }

  /** Start showing the jobs of `queue`; returns the unsubscribe. */
  attach(queue: Queue, serving: Serving): () => void {
    this.#model.load(queue.list());
    this.#serving = serving;
    this.#bump();
    return queue.subscribe((event) => this.#model.apply(event));
  }

  /** Log lines go to the message area, not to stdout (that would tear the frame). */
  readonly log: Log = (subsystem, message) => this.#model.message(this.#options.clock.now(), subsystem, message);

  /** Replace the hint line, e.g. while stopping. */
  status(text: string): void {
    this.#status = text;
    this.#bump();
  }

  /** Unmount and give the terminal back (cursor shown, raw mode off). */
  unmount(): void {
    if (this.#unmounted) return;
    this.#unmounted = true;
    process.off('exit', this.#restore);
    this.#instance.unmount();
    this.#options.stdout.write(SHOW_CURSOR);
  }

  /** @internal for the component: the time to leave before the next frame, the loop busy for `loopBusy` of the time since the last. */
  pace(frameMs: number, loopBusy: number): number {
    return framePace(frameMs, this.#drawMs, loopBusy);
  }

  /** @internal for the component */
  frame() {
    return {
      version: this.#version + this.#model.version,
      serving: this.#serving,
      loading: this.#options.loading,
      status: this.#status,
      snapshot: this.#model.snapshot(),
      now: this.#options.clock.now(),
      quit: this.#options.onQuit,
    };
  }

  #bump(): void {
    this.#version += 1;
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

function Live({ tui, frameMs }: { readonly tui: Tui; readonly frameMs: number }) {
  const size = useSize();
  const [frame, setFrame] = useState(() => ({ n: 0, ...tui.frame() }));
  const { isRawModeSupported } = useStdin();
  useInput(
    (input, key) => {
      if (input === 'q' || input === 'Q' || (key.ctrl && input === 'c')) frame.quit();
    },
    { isActive: isRawModeSupported === true },
  );
  useEffect(() => {
    // Redraw when something changed, and once a second anyway for the clocks;
    // never more often than frameMs however many events arrive, nor than the
    // pace that keeps drawing to a small share of the thread.
    let drawnAt = Date.now();
    let drawn = frame.version;
    let loopAt = performance.eventLoopUtilization();
    const timer = setInterval(() => {
      const since = Date.now() - drawnAt;
      if (since < tui.pace(frameMs, performance.eventLoopUtilization(loopAt).utilization) - frameMs / 2) return;
      loopAt = performance.eventLoopUtilization();
      const next = tui.frame();
      const loading = next.serving === undefined;
      if (next.version === drawn && !loading && since < 1000) return;
      drawn = next.version;
      drawnAt = Date.now();
      setFrame((previous) => ({ n: previous.n + 1, ...next }));
    }, frameMs);
    return () => clearInterval(timer);
  }, [tui, frameMs]);
  return (
    <Screen
      serving={frame.serving}
      loading={frame.loading}
      snapshot={frame.snapshot}
      now={frame.now}
      width={size.width}
      height={size.height}
      frame={frame.n}
      {...(frame.status !== undefined ? { status: frame.status } : {})}
    />
  );
}
