import { spawn, type ChildProcess } from 'node:child_process';

/**
 * A lean client in a process of its own that asks dispatch for a path it does
 * not serve (404) every 20 ms over a fresh connection, and times each answer:
 * how responsive dispatch itself is while the fleet runs, apart from the
 * fleet client's own event loop (which the fleet's latencies include). It takes
 * no job and changes nothing.
 */
const PROBE = `
const http = require('node:http');
const url = new URL(process.argv[1]);
const times = [];
let stopping = false;
function once() {
  if (stopping) return;
  const started = performance.now();
  const req = http.request({ host: url.hostname, port: url.port, path: '/bench-probe', method: 'GET', agent: false, localAddress: '127.255.255.254' }, (res) => {
    res.resume();
    res.on('end', () => { times.push(performance.now() - started); setTimeout(once, 20); });
  });
  req.setTimeout(10000, () => req.destroy());
  req.on('error', () => setTimeout(once, 20));
  req.end();
}
once();
process.on('SIGTERM', () => { stopping = true; process.stdout.write(JSON.stringify(times)); process.exit(0); });
`;

export interface Probe {
  /** Stop probing; the answer times, ms. */
  stop(): Promise<number[]>;
}

export function startProbe(origin: string): Probe {
  const child: ChildProcess = spawn(process.execPath, ['-e', PROBE, origin], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return {
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve(out ? (JSON.parse(out) as number[]) : []));
        child.kill('SIGTERM');
      }),
  };
}
