import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';

/**
 * The floor of the fleet figures: a bare node:http server that gives the
 * protocol's answers and does nothing else (no jobs, no state, no files
 * written, the workload held in memory). The same client against it, on the
 * same machine, shows how much of a latency is Node and the machine, and how
 * much is dispatch. Run as a process of its own:
 *
 *   node --import tsx test/bench/floor.ts PORT WORKLOAD POWEROFF   (prints "ready")
 *
 * Each server (peer address) is sent the workload until it reports (PUT),
 * then poweroff.efi.
 */
const [port, workloadPath, poweroffPath] = process.argv.slice(2);
const workload = await readFile(workloadPath!);
const poweroff = await readFile(poweroffPath!);
const reported = new Set<string>();

const server = createServer((req, res) => {
  const ip = req.socket.remoteAddress ?? '';
  if (req.method === 'HEAD' || req.method === 'GET') {
    const bytes = reported.has(ip) ? poweroff : workload;
    res.writeHead(200, { 'Content-Type': 'application/efi', 'Content-Length': String(bytes.byteLength), 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-store' });
    res.end(req.method === 'GET' ? bytes : undefined);
    return;
  }
  req.resume();
  req.once('end', () => {
    if (req.method === 'PUT') reported.add(ip);
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=UTF-8' });
    res.end(req.method === 'PUT' ? 'report stored\n' : 'booting\n');
  });
});
server.listen({ port: Number(port), host: '127.0.0.1', backlog: 4096 }, () => process.stdout.write('ready\n'));
process.once('SIGTERM', () => process.exit(0));
