/**
 * Run as a process of its own, with the flags `npm start` gives node: start
 * a worker with the drawing thread's options (app.ts's drawerOptions) and
 * print, as JSON, the heap that worker got and the main thread's afterwards.
 */
import { getHeapSpaceStatistics } from 'node:v8';
import { MessageChannel, Worker } from 'node:worker_threads';
import { drawerOptions, type DrawerData } from '../../src/ui/tui/app.ts';

/** Short-lived arrays, with some kept a while: enough for a young generation to grow to its limit. */
function churn(): void {
  let kept: unknown[] = [];
  for (let i = 0; i < 4000; i += 1) {
    kept.push(new Array(1000).fill({ i }));
    if (kept.length > 2000) kept = [];
  }
}

const newSpaceMb = (stats: ReturnType<typeof getHeapSpaceStatistics>) => stats.find((space) => space.space_name === 'new_space')!.space_size / 2 ** 20;

const { port2 } = new MessageChannel();
const data: DrawerData = { output: port2, shared: new SharedArrayBuffer(8), size: { columns: 80, rows: 24, isTTY: false }, loading: '', frameMs: 100, now: 0 };
const probe = `(${String(churn)})();
const v8 = require('node:v8');
require('node:worker_threads').parentPort.postMessage({ spaces: v8.getHeapSpaceStatistics(), limit: v8.getHeapStatistics().heap_size_limit });`;
const worker = new Worker(probe, { ...drawerOptions(data, process.env), eval: true });
const [report] = (await new Promise((resolve, reject) => {
  worker.once('message', (message) => resolve([message]));
  worker.once('error', reject);
})) as [{ spaces: ReturnType<typeof getHeapSpaceStatistics>; limit: number }];
await worker.terminate();
port2.close();
churn();
process.stdout.write(`${JSON.stringify({ workerNewSpaceMb: newSpaceMb(report.spaces), workerLimitMb: report.limit / 2 ** 20, mainNewSpaceMb: newSpaceMb(getHeapSpaceStatistics()) })}\n`);
