/**
 * A process writing its stdout through FdOutput, for test/output.test.ts.
 * argv: a file for what it says, lines, max queued characters ('-' for the
 * default), and `exit` to end with process.exit() in the turn that wrote the
 * last lines. Says in the file (one JSON line each, never through stdout,
 * which may be stalled): `stalled` once every line is queued, with the ticks
 * a 5 ms timer got while writing, whether stdout is a terminal, and how
 * FdOutput writes to it; `closed`;
 * `done`, after 100 more lines written once the first ones are out.
 */
import { appendFileSync } from 'node:fs';
import { isatty } from 'node:tty';
import { FdOutput, nonBlocking } from '../../src/ui/output.ts';

const [file = '', linesArg = '1000', maxArg = '-', ...flags] = process.argv.slice(2);
const lines = Number(linesArg);
const say = (what: Record<string, unknown>) => appendFileSync(file, `${JSON.stringify(what)}\n`);
const nonblocking = nonBlocking(1);
const out = new FdOutput(1, {
  ...(maxArg === '-' ? {} : { maxQueued: Number(maxArg) }),
  droppedNotice: (dropped) => `-- ${dropped} dropped\n`,
  onClosed: (err) => say({ closed: err.code }),
});
process.on('exit', () => out.flushSync());

let ticks = 0;
const timer = setInterval(() => (ticks += 1), 5);
const payload = 'x'.repeat(90);
// A hundred turns of writing, each with a timer's chance in between.
for (let turn = 0; turn < 100; turn += 1) {
  for (let i = (turn * lines) / 100; i < ((turn + 1) * lines) / 100; i += 1) out.write(`line ${i} ${payload}\n`);
  if (flags.includes('exit') && turn === 99) process.exit(0);
  await new Promise((resolve) => setTimeout(resolve, 2));
}
say({ stalled: true, ticks, terminal: isatty(1), nonblocking, mode: out.mode });
await out.idle(60_000);
for (let i = 0; i < 100; i += 1) out.write(`after ${i}\n`);
await out.idle(60_000);
clearInterval(timer);
say({ done: true });
