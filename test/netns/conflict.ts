/** Run inside a namespace: two advertisers claim one instance name on different ports. Prints one JSON line. */
import { setTimeout as sleep } from 'node:timers/promises';
import { createAdvertiser } from '../../src/mdns/index.ts';

const logs: string[] = [];
const make = (port: number) =>
  createAdvertiser({ port, path: '/dispatch', version: '0', description: 'conflict', instance: 'dispatch-0001', rescanMs: 0, log: (m) => logs.push(`${port}: ${m}`) });
const one = make(18090);
const two = make(18091);
await Promise.all([one.start(), two.start()]);
// Both announce at once: each hears the other's first announcement within ~100 ms.
await sleep(1_500);
process.stdout.write(`${JSON.stringify({ instances: [one.instance, two.instance], logs })}\n`);
await Promise.all([one.stop(), two.stop()]);
