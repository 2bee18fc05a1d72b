/**
 * The TUI's drawing thread fails while the lab runs: nothing may be lost.
 * Prints as JSON what reached the terminal from the failure's notice on
 * (ANSI stripped): frames drawn before it may still arrive just before. Run by test/ui.test.tsx in a process of its own; the failure
 * is thrown in the drawing thread through the inspector
 * (test/support/threads.ts).
 */
import { stripVTControlCharacters } from 'node:util';
import { Queue, systemClock } from '../../src/jobs/index.ts';
import { Tui } from '../../src/ui/tui/app.ts';
import { fakeTerminal } from './terminal.ts';
import { inDrawingThread, workerThreads } from './threads.ts';
import { fakeWorkload } from './workloads.ts';

const LOADING = 'loading the lab';
// What keeps dispatch running is its server; here, this timer.
setInterval(() => undefined, 1_000);
const threads = await workerThreads();
const { stdout, stdin, writes, until } = fakeTerminal();
const tui = new Tui({ stdout, stdin, clock: systemClock, loading: LOADING, onQuit: () => undefined });
const queue = new Queue([fakeWorkload('memtest.efi', 4096)], { clock: systemClock, downloadTimeoutMs: 60_000 });
tui.attach(queue, { version: '9.9.9', source: 'directory /lab', reports: 'directory ./reports', bootUrls: ['http://10.1.2.3:8080/dispatch'] });
await until('memtest.efi');
// Logged just before the failure: maybe never drawn.
tui.log('test', 'a log line before the break');
const thrown = await threads.evaluate(inDrawingThread(LOADING, `(setImmediate(() => { throw new Error('drawing broke, on purpose'); }), 'thrown')`));
await until('the TUI stopped');
tui.log('test', 'a log line after the break');
queue.claim('10.0.0.2', 'HEAD');
tui.unmount();
process.stdout.write(`${JSON.stringify({ thrown: thrown.filter((value) => typeof value === 'string'), after: stripVTControlCharacters(writes.slice(writes.findIndex((chunk) => chunk.includes('the TUI stopped'))).join('')) })}\n`);
process.exit(0);
