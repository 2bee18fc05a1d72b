import type { EventLoopSample } from './app.ts';

/**
 * What the two threads share (DrawerData.shared, as an Int32Array): at DONE,
 * 1 once the drawing thread has unmounted and sent its last output; at
 * WRITTEN, how many of its messages the terminal has taken.
 */
export const DONE = 0;
export const WRITTEN = 1;

/** Frames never come further apart than this, however slow drawing is: the screen still follows. */
const SLOWEST_FRAME_MS = 500;

/** The event loop busier than this (share of the time it ran code) is a server-side rush: frames wait. */
const BUSY_LOOP = 0.75;

/**
 * How long to wait between two frames when drawing one took `drawMs` and the
 * main thread's event loop was busy for `loopBusy` (0 to 1) of the time since
 * the last one: at least `frameMs`, and twenty times what ink took to draw
 * the last frame. Drawing has a thread of its own but shares the machine's
 * cores with the thread that answers the servers, the file system's threads
 * and the kernel: a 160x50 terminal over a busy fleet takes ink 10 to 20 ms
 * a frame, so 3 to 5 frames a second then. While the main thread is nearly
 * always busy (a thousand servers booting), 2 frames a second: the servers
 * come first.
 */
export function framePace(frameMs: number, drawMs: number, loopBusy = 0): number {
  if (loopBusy > BUSY_LOOP) return Math.max(frameMs, SLOWEST_FRAME_MS);
  return Math.max(frameMs, Math.min(SLOWEST_FRAME_MS, 20 * drawMs));
}

/** The share of the time between two samples that the loop ran code (0 when no time passed). */
export function busyBetween(before: EventLoopSample, after: EventLoopSample): number {
  const active = after.active - before.active;
  const total = active + after.idle - before.idle;
  return total > 0 ? active / total : 0;
}
