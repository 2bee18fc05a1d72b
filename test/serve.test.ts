import { strict as assert } from 'node:assert';
import http from 'node:http';
import { describe, test } from 'node:test';
import { Hono } from 'hono';
import type { Env } from '../src/http/deps.ts';
import { bind, canSharePort } from '../src/http/serve.ts';
import { loopbackAddress } from './fleet/simulator.ts';

// The listener itself: how many sockets it listens with, and that a port in
// use is never silently shared. Real sockets on loopback.

function app() {
  const hono = new Hono<Env>();
  hono.get('/', (c) => c.text('ok\n'));
  return hono;
}

function get(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/', localAddress, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
  });
}

describe('listening', () => {
  test('the port is shared by several listeners only from Node 22.12 and 23.1 (reusePort)', () => {
    assert.equal(canSharePort('20.18.1'), false);
    assert.equal(canSharePort('22.11.0'), false);
    assert.equal(canSharePort('22.12.0'), true);
    assert.equal(canSharePort('23.0.0'), false);
    assert.equal(canSharePort('23.1.0'), true);
    assert.equal(canSharePort('24.11.1'), true);
  });

  test('connections from many servers at once are all answered, spread over every listener', async (t) => {
    const bound = await bind(app(), { host: '127.0.0.1', port: 0 });
    t.after(() => bound.close());
    assert.equal(bound.servers.length, canSharePort() ? 4 : 1);
    const accepted = bound.servers.map(() => 0);
    bound.servers.forEach((server, i) => server.on('connection', () => (accepted[i]! += 1)));
    const statuses = await Promise.all(Array.from({ length: 200 }, (_, i) => get(bound.address.port, loopbackAddress(7000 + i))));
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(accepted.reduce((a, b) => a + b, 0), 200);
    if (bound.servers.length > 1) assert.ok(accepted.filter((n) => n > 0).length > 1, `the kernel spread them: ${accepted.join(', ')}`);
  });

  test('a port in use is refused, even by a listener that could share it: never split with another dispatch', async (t) => {
    const first = await bind(app(), { host: '127.0.0.1', port: 0 });
    t.after(() => first.close());
    const second = await bind(app(), { host: '127.0.0.1', port: first.address.port }).catch((err: NodeJS.ErrnoException) => err);
    if (!(second instanceof Error)) await second.close();
    assert.ok(second instanceof Error && (second as NodeJS.ErrnoException).code === 'EADDRINUSE', 'the second bind is refused with EADDRINUSE');
    // The first still answers alone, and once it is closed the port is free again.
    assert.equal(await get(first.address.port, loopbackAddress(7300)), 200);
    await first.close();
    const again = await bind(app(), { host: '127.0.0.1', port: first.address.port });
    await again.close();
    for (const server of again.servers) assert.equal(server.listening, false);
  });
});
