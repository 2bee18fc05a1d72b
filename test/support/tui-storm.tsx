/**
 * An event storm over 5,000 jobs drawn by the live TUI into a terminal that
 * counts what it is sent; prints {drawn, last} as JSON. Run by
 * test/ui.test.tsx in a process of its own, without CI in its environment:
 * under CI, ink draws nothing live.
 */
import { stripVTControlCharacters } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { Queue, systemClock } from '../../src/jobs/index.ts';
import { Tui } from '../../src/ui/tui/app.ts';
import type { Serving } from '../../src/ui/tui/screen.tsx';
import { fakeTerminal } from './terminal.ts';
import { fakeWorkload } from './workloads.ts';

const SERVING: Serving = { version: '9.9.9', source: 'directory /lab', reports: 'directory ./reports', bootUrls: ['http://10.1.2.3:8080/dispatch'] };

// A terminal that counts what it is sent.
const terminal = fakeTerminal();
const { stdout, stdin, writes } = terminal;
const names = Array.from({ length: 5_000 }, (_, i) => `w-${String(i).padStart(4, '0')}.efi`);
// 1 GiB each, but never read: only the sizes matter here.
const workloads = names.map((name) => ({ ...fakeWorkload(name, 1), size: 1 << 30 }));
const queue = new Queue(workloads, { clock: systemClock, downloadTimeoutMs: 60_000 });
const tui = new Tui({ stdout, stdin, clock: systemClock, loading: 'loading', onQuit: () => undefined });
const detach = tui.attach(queue, SERVING);
const transfers = Array.from({ length: 200 }, (_, i) => {
  const ip = `10.0.${i >> 8}.${(i & 255) + 2}`;
  const claim = queue.claim(ip, 'HEAD');
  if (claim.kind !== 'job') throw new Error('no job');
  queue.claim(ip, 'GET');
  return queue.beginTransfer(claim.id, ip, { reachesEnd: true });
});
const frames = () => writes.filter((chunk) => chunk.includes('servers boot from')).length;
// The drawing thread loads ink first; the storm starts once the table is on screen.
await terminal.until('servers boot from');
await delay(300);
const before = frames();
// Two seconds of every transfer moving on every millisecond or so.
const until = Date.now() + 2_000;
let bytes = 0;
while (Date.now() < until) {
  bytes += 65_536;
  for (const transfer of transfers) transfer.progress(bytes);
  await new Promise((resolve) => setImmediate(resolve));
}
const drawn = frames() - before;
detach();
tui.unmount();
const last = stripVTControlCharacters(writes.filter((chunk) => chunk.includes('servers boot from')).at(-1) ?? '');
process.stdout.write(`${JSON.stringify({ drawn, last })}\n`);
process.exit(0);
