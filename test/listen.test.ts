import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { ACCEPTORS, closeServer, listenShared, sharesPort } from '../src/http/listen.ts';
import { send } from './fleet/http.ts';
import { startEdgeLab } from './support/edge-lab.ts';

const shared = sharesPort();
const noSharing = shared ? false : `this Node (${process.versions.node}, ${process.platform}) cannot share a port (reusePort: Node 22.12 or 23.1 on, Linux)`;

/** Sockets on 127.0.0.1:port in a /proc/net/tcp state ('0A' listening, '01' established). */
function socketsOn(port: number, state: '0A' | '01'): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .filter((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1] === local && fields[3] === state;
    }).length;
}

/** A listen that should have failed: let its sockets go (the test fails, and does not hang). */
async function stopAll(listeners: readonly Server[]): Promise<void> {
  await Promise.all(listeners.map(closeServer));
}

describe('listening', () => {
  test('the port is shared from Node 22.12 and 23.1, on Linux', () => {
    assert.equal(sharesPort('20.18.1', 'linux'), false);
    assert.equal(sharesPort('22.11.0', 'linux'), false);
    assert.equal(sharesPort('22.12.0', 'linux'), true);
    assert.equal(sharesPort('23.0.0', 'linux'), false);
    assert.equal(sharesPort('23.1.0', 'linux'), true);
    assert.equal(sharesPort('24.0.0', 'linux'), true);
    assert.equal(sharesPort('24.11.1', 'darwin'), false);
  });

  test(`dispatch listens with ${ACCEPTORS} sockets on its one port, and each hands its connections to the app`, { skip: noSharing }, async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': Buffer.from('a') } });
    assert.equal(socketsOn(lab.port, '0A'), ACCEPTORS);
    // 64 servers: the kernel spreads their connections over the sockets.
    const answers = await Promise.all(Array.from({ length: 64 }, (_, i) => send({ url: `${lab.origin}/api/jobs`, method: 'GET', localAddress: `127.0.1.${i + 1}`, timeoutMs: 5_000 })));
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
    await lab.bound.close(0);
    assert.equal(socketsOn(lab.port, '0A'), 0, 'every socket stops listening');
    // The port is free again: a plain socket can have it.
    const plain = createServer();
    plain.listen({ host: '127.0.0.1', port: lab.port, exclusive: true });
    await once(plain, 'listening');
    await closeServer(plain);
  });

  test('a port something already listens on fails as in use, a second dispatch included', { skip: noSharing }, async (t) => {
    const lab = await startEdgeLab(t, { workloads: { 'a.efi': Buffer.from('a') } });
    const second = createHttpServer();
    await assert.rejects(listenShared(second, { host: '127.0.0.1', port: lab.port }).then(stopAll), { code: 'EADDRINUSE' });
    assert.equal(second.listening, false);
    assert.equal(socketsOn(lab.port, '0A'), ACCEPTORS, 'the first keeps its sockets, and no other joined them');
    assert.equal((await send({ url: `${lab.origin}/api/jobs`, method: 'GET', timeoutMs: 5_000 })).status, 200);

    // Held by a plain socket, not shared: the same.
    const plain = createServer();
    plain.listen({ host: '127.0.0.1', port: 0 });
    await once(plain, 'listening');
    t.after(() => closeServer(plain));
    await assert.rejects(listenShared(createHttpServer(), { host: '127.0.0.1', port: (plain.address() as AddressInfo).port }).then(stopAll), { code: 'EADDRINUSE' });
  });

  // libuv takes one waiting connection per listening socket per turn of the
  // event loop: 64 connections made while the loop was busy take 64 turns
  // through one socket, and far fewer through ACCEPTORS.
  for (const acceptors of [1, ACCEPTORS]) {
    test(`64 connections made while the loop is busy: taken ${acceptors === 1 ? 'one per turn through one socket' : `several per turn through ${acceptors}`}`, { skip: acceptors === 1 ? false : noSharing, timeout: 30_000 }, async (t) => {
      const server = createHttpServer((_req, res) => res.end('ok'));
      const listeners = await listenShared(server, { host: '127.0.0.1', port: 0 }, acceptors);
      t.after(() => Promise.all(listeners.map(closeServer)));
      assert.equal(listeners.length, acceptors);
      const port = (server.address() as AddressInfo).port;
      const taken: number[] = [];
      let turn = 0;
      server.on('connection', (socket) => {
        taken.push(turn);
        socket.destroy();
      });

      const child = spawn(process.execPath, ['-e', `process.stdin.once('data', () => { for (let i = 0; i < 64; i++) require('node:net').connect(${port}, '127.0.0.1').on('error', () => {}); }); process.stdin.on('end', () => process.exit(0)); console.log('ready');`], { stdio: ['pipe', 'pipe', 'inherit'] });
      t.after(() => child.kill());
      await once(child.stdout, 'data');
      child.stdin.write('go\n');
      // This loop does nothing until the kernel holds all 64, finished but not taken.
      const deadline = Date.now() + 10_000;
      while (socketsOn(port, '01') < 64 && Date.now() < deadline);
      assert.equal(socketsOn(port, '01'), 64, 'the 64 connections are made while the loop is busy');
      const turns = (async () => {
        while (taken.length < 64) {
          turn += 1;
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      await turns;
      const distinct = new Set(taken).size;
      t.diagnostic(`${acceptors} listening socket(s): 64 connections taken in ${distinct} turns of the loop`);
      if (acceptors === 1) assert.equal(distinct, 64, 'this Node took more than one connection per turn through one socket: are the extra sockets still needed?');
      else assert.ok(distinct <= 32, `${distinct} turns`);
      child.stdin.end();
    });
  }
});
