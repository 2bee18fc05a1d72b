// Helpers for the tests that boot real firmware (QEMU + OVMF) against dispatch.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { findFirmware, runVm, type VmOptions, type VmResult } from '../../src/vm/index.ts';
import type { Cleanup } from '../fleet/lab.ts';

/** Why the firmware tests cannot run here, with the install hint; undefined when they can. */
export function firmwareMissing(): string | undefined {
  const found = findFirmware();
  return typeof found === 'string' ? found : undefined;
}

/** Tools missing for building FAT images and ISOs, with the install hint. */
export function mediaToolsMissing(): string | undefined {
  const missing = ['mformat', 'mmd', 'mcopy', 'mkfs.fat', 'xorriso'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  return missing.length === 0 ? undefined : `${missing.join(', ')} missing; install them: apt-get install mtools dosfstools xorriso`;
}

/** One HTTP request or response as it crossed the wire. */
export interface WireMessage {
  /** Request line or status line. */
  readonly start: string;
  /** Header lines exactly as sent, in order. */
  readonly headers: readonly string[];
  readonly body: Buffer;
}

export interface Exchange {
  readonly connection: number;
  readonly request: WireMessage;
  /** Undefined until the whole answer has passed (or when it never did). */
  response: WireMessage | undefined;
  /** Milliseconds since the proxy started. */
  readonly atMs: number;
}

function header(message: { headers: readonly string[] }, name: string): string | undefined {
  const prefix = `${name.toLowerCase()}:`;
  return message.headers.find((h) => h.toLowerCase().startsWith(prefix))?.slice(prefix.length).trim();
}
export { header as wireHeader };

/** Split one HTTP message off the front of `bytes`; undefined when it is not all there yet. */
function takeMessage(bytes: Buffer, hasBody: boolean): { message: WireMessage; rest: Buffer } | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = bytes.toString('latin1', 0, end).split('\r\n');
  const head = { start: lines[0]!, headers: lines.slice(1) };
  const length = hasBody ? Number(header(head, 'content-length') ?? 0) : 0;
  if (bytes.length < end + 4 + length) return undefined;
  return { message: { ...head, body: bytes.subarray(end + 4, end + 4 + length) }, rest: bytes.subarray(end + 4 + length) };
}

/**
 * A TCP relay in front of dispatch that keeps every request and response byte for byte,
 * so a test sees exactly what the firmware sent (header order and case included).
 * The firmware sends no request bodies (HEAD and GET only); dispatch answers with a
 * Content-Length, never chunked.
 */
export async function recordingProxy(t: Cleanup, upstreamPort: number) {
  const exchanges: Exchange[] = [];
  const sockets = new Set<Socket>();
  const started = Date.now();
  let connections = 0;
  const server = createServer((client) => {
    const id = ++connections;
    const upstream = createConnection({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(client).add(upstream);
    let sent: Buffer = Buffer.alloc(0);
    let received: Buffer = Buffer.alloc(0);
    const unanswered: Exchange[] = [];
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      sent = Buffer.concat([sent, chunk]);
      for (let taken = takeMessage(sent, false); taken; taken = takeMessage(sent, false)) {
        sent = taken.rest;
        const exchange: Exchange = { connection: id, request: taken.message, response: undefined, atMs: Date.now() - started };
        exchanges.push(exchange);
        unanswered.push(exchange);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk);
      received = Buffer.concat([received, chunk]);
      for (let next = unanswered[0]; next; next = unanswered[0]) {
        const taken = takeMessage(received, !next.request.start.startsWith('HEAD '));
        if (!taken) break;
        received = taken.rest;
        next.response = taken.message;
        unanswered.shift();
      }
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  /** Every exchange so far, in the order the requests arrived. */
  return { port, exchanges: (): readonly Exchange[] => exchanges };
}

/** Boot a VM and wait for its end; QEMU is switched off when the test ends, whatever happened. */
export async function bootVm(t: Cleanup, options: VmOptions): Promise<VmResult> {
  const controller = new AbortController();
  t.after(() => controller.abort());
  return runVm({ ...options, signal: controller.signal });
}

/** The serial console without the firmware's terminal escapes. */
export function plainConsole(serial: string): string {
  // eslint-disable-next-line no-control-regex
  return serial.replace(/\x1b\[[0-9;=?]*[A-Za-z]/g, '').replace(/\r/g, '');
}
