/**
 * The TUI on screen, then dispatch dies: an uncaught error, or with an
 * argument, that fatal signal (e.g. SIGHUP, as when the SSH session goes).
 * The terminal must come back usable (run by test/tui-cli.test.ts).
 */
import { Tui } from '../../src/ui/tui/app.ts';

const signal = process.argv[2] as NodeJS.Signals | undefined;
new Tui({ stdout: process.stdout, stdin: process.stdin, clock: { now: () => Date.now() }, loading: 'about to crash', onQuit: () => process.exit(0) });
setTimeout(() => {
  if (signal) process.kill(process.pid, signal);
  else throw new Error('a bug, on purpose');
}, 1_000);
