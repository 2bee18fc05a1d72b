/**
 * Drive a running dispatch with simulated servers, to watch its TUI or try a
 * CI-mode run by hand:
 *
 *   npx tsx test/fleet/demo.ts --url http://127.0.0.1:8080/dispatch --servers 8 --failing 1 --rate 256KiB --run 3s
 *
 * Each server boots until it is handed poweroff.efi. A failing server's first
 * workload reboots without reporting (DESIGN §5 rule 3: that job fails).
 * Servers use 127.0.0.2, .3, … (Linux answers on all of 127/8).
 */
import { parseArgs } from 'node:util';
import { parseBytes, parseDuration } from '../../src/cli/units.ts';
import { runFleet, type ServerPlan } from './simulator.ts';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080/dispatch' },
    servers: { type: 'string', default: '4' },
    failing: { type: 'string', default: '0' },
    rate: { type: 'string' },
    run: { type: 'string' },
    first: { type: 'string', default: '0' },
    deadline: { type: 'string', default: '10m' },
  },
});

function count(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} wants a whole number, not "${text}"`);
  return n;
}

const servers = count(values.servers, '--servers');
const failing = Math.min(servers, count(values.failing, '--failing'));
const runMs = values.run === undefined ? undefined : parseDuration(values.run);
const then = runMs === undefined ? {} : { runMs };
const plans: ServerPlan[] = Array.from({ length: servers }, (_, i) => (i < failing ? { boots: [{ ...then, reports: [] }], then } : { then }));

const log = await runFleet({
  url: values.url,
  servers: plans,
  firstAddress: count(values.first, '--first'),
  deadlineMs: parseDuration(values.deadline),
  firmwareRetries: 5,
  ...(values.rate === undefined ? {} : { bytesPerSecond: parseBytes(values.rate) }),
});
for (const server of log.servers) {
  const boots = server.boots.filter((boot) => !boot.poweroff).length;
  console.log(`${server.ip}  ${boots} workload(s)  ${server.stopped}${server.error ? `: ${server.error}` : ''}${server.violations.length ? `  violations: ${server.violations.join('; ')}` : ''}`);
}
console.log(`${log.servers.length} server(s) in ${(log.ms / 1000).toFixed(1)} s`);
process.exit(log.servers.every((server) => server.stopped === 'poweroff' && server.violations.length === 0) ? 0 : 1);
