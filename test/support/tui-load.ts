/**
 * Start the TUI as dispatch does, let it draw, and print as JSON which
 * React builds ran in its drawing thread and in this one, what the drawing
 * thread's environment says, and what this one's says; then end by itself
 * (the TUI must not keep a process running). Run by
 * test/ui.test.tsx in a process of its own (React picks its build once per
 * thread). The drawing thread is asked through the inspector
 * (test/support/threads.ts).
 */
import { createRequire } from 'node:module';
import { Tui } from '../../src/ui/tui/app.ts';
import { REACT_BUILDS_SOURCE, reactBuilds } from './react-cache.ts';
import { fakeTerminal } from './terminal.ts';
import { inDrawingThread, workerThreads } from './threads.ts';

const LOADING = 'loading the lab';

// What keeps dispatch running is its server; here, this timer, until the end.
const running = setInterval(() => undefined, 1_000);
const threads = await workerThreads();

const { stdout, stdin, writes, until } = fakeTerminal();
new Tui({ stdout, stdin, clock: { now: () => Date.now() }, loading: LOADING, onQuit: () => undefined });
await until(LOADING);

const probe = inDrawingThread(LOADING, `JSON.stringify({ ...(${REACT_BUILDS_SOURCE})(require.cache), NODE_ENV: process.env.NODE_ENV ?? null, CI: process.env.CI ?? null })`);
const found = (await threads.evaluate(probe)).filter((value): value is string => typeof value === 'string');
threads.close();
process.stdout.write(
  `${JSON.stringify({
    drawn: writes.some((chunk) => chunk.includes(LOADING)),
    drawers: found.map((text) => JSON.parse(text) as unknown),
    main: { ...reactBuilds(createRequire(import.meta.url).cache), NODE_ENV: process.env.NODE_ENV ?? null, CI: process.env.CI ?? null },
  })}\n`,
);
// No process.exit, and no unmount: the TUI on screen must not be what keeps a process running.
clearInterval(running);
