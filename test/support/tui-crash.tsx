/** The TUI on screen, then an uncaught error: the terminal must come back usable (run by test/tui-cli.test.ts). */
import { Tui } from '../../src/ui/tui/app.ts';

new Tui({ stdout: process.stdout, stdin: process.stdin, clock: { now: () => Date.now() }, loading: 'about to crash', onQuit: () => process.exit(0) });
setTimeout(() => {
  throw new Error('a bug, on purpose');
}, 1_000);
