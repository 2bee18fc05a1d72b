import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { describe, test } from 'node:test';
import { FIRMWARE_HEADERS, send } from './fleet/http.ts';
import { runFleet } from './fleet/simulator.ts';
import { startEdgeLab } from './support/edge-lab.ts';
import { bytewise, raw, type RawOutcome } from './support/raw.ts';

// Issue #7: 200 slow-loris connections — headers trickled a byte at a time,
// and report bodies trickled a byte at a time by servers that do hold a job —
// are held open while a fleet of 10 servers runs to the end; then the server
// closes every one of them within the (shortened) timeouts.

const LIMITS = { headersTimeoutMs: 5_000, requestTimeoutMs: 7_000, keepAliveTimeoutMs: 1_000, idleTimeoutMs: 10_000, maxConnectionsPerPeer: 16 };
const FLEET = 10;
const ATTACKERS = 10;
const PER_ATTACKER = 10;


describe('slow-loris', () => {
  test(`${2 * ATTACKERS * PER_ATTACKER} slow connections do not stop a fleet of ${FLEET}, and are all closed within the timeouts`, { timeout: 60_000 }, async (t) => {
    const workloads: Record<string, Buffer> = {};
    // Name order is assignment order: the attackers' jobs first, then the fleet's.
    for (let i = 0; i < ATTACKERS; i += 1) workloads[`a${i}.efi`] = randomBytes(1024);
    for (let i = 0; i < FLEET; i += 1) workloads[`f${i}.efi`] = randomBytes(8192 + i);
    const lab = await startEdgeLab(t, { workloads, limits: LIMITS });

    // Servers that booted a job may PUT a report: their trickled bodies reach the report route.
    const booted = Array.from({ length: ATTACKERS }, (_, i) => `127.0.6.${i + 1}`);
    const agent = new http.Agent({ keepAlive: false });
    t.after(() => agent.destroy());
    for (const ip of booted) {
      for (const method of ['HEAD', 'GET', 'POST']) {
        const answer = await send({ url: lab.url, method, localAddress: ip, agent, timeoutMs: 5_000, headers: method === 'POST' ? {} : FIRMWARE_HEADERS });
        assert.equal(answer.status, 200, `${method} from ${ip}`);
      }
    }

    const slowHeaders = bytewise(`GET /dispatch HTTP/1.1\r\nHost: dispatch\r\nUser-Agent: ${'x'.repeat(60)}\r\n\r\n`);
    const report = JSON.stringify({ title: 'slow', body: 'y'.repeat(200) });
    const slowBody = [`PUT /dispatch HTTP/1.1\r\nHost: dispatch\r\nContent-Type: application/json\r\nContent-Length: ${report.length}\r\n\r\n`, ...bytewise(report)];
    const loris: Array<Promise<RawOutcome & { kind: 'headers' | 'body' }>> = [];
    for (let a = 0; a < ATTACKERS; a += 1) {
      for (let n = 0; n < PER_ATTACKER; n += 1) {
        loris.push(raw({ port: lab.port, localAddress: `127.0.5.${a + 1}`, chunks: slowHeaders, gapMs: 100, limitMs: 20_000 }).then((r) => ({ ...r, kind: 'headers' as const })));
        loris.push(raw({ port: lab.port, localAddress: booted[a]!, chunks: slowBody, gapMs: 100, limitMs: 20_000 }).then((r) => ({ ...r, kind: 'body' as const })));
      }
    }
    const heldAtStart = await lab.until('every slow connection accepted', async () => (await lab.bound.connections()) >= loris.length, 5_000);

    const fleet = await runFleet({ url: lab.url, servers: FLEET, deadlineMs: 20_000, requestTimeoutMs: 5_000 });
    const heldAfterFleet = await lab.bound.connections();
    for (const server of fleet.servers) {
      assert.equal(server.stopped, 'poweroff', `${server.ip}: ${server.error ?? server.stopped}`);
      assert.deepEqual(server.violations, [], server.ip);
      assert.deepEqual(server.boots.flatMap((b) => b.reports.map((r) => r.status)), [200], `${server.ip} had its report acknowledged`);
    }
    assert.ok(fleet.ms < LIMITS.headersTimeoutMs - 500, `the fleet ran while every slow connection was held (${Math.round(fleet.ms)} ms)`);
    assert.ok(heldAfterFleet >= loris.length, `${heldAfterFleet} connections still open when the fleet was done`);

    const outcomes = await Promise.all(loris);
    for (const outcome of outcomes) {
      const limit = (outcome.kind === 'headers' ? LIMITS.headersTimeoutMs : LIMITS.requestTimeoutMs) + 2_000;
      assert.equal(outcome.status, 408, `${outcome.kind}: ${outcome.data.toString('latin1').slice(0, 80)}`);
      assert.equal(outcome.end, 'closed');
      assert.ok(outcome.ms < limit, `${outcome.kind} connection closed after ${outcome.ms} ms`);
      assert.ok(outcome.unsent > 0, 'closed before the client was done sending');
    }
    await lab.until('no connection left', async () => (await lab.bound.connections()) === 0, 3_000);

    await lab.until('the fleet\'s jobs finished', async () => (await lab.jobs()).filter((j) => j.name.startsWith('f')).every((j) => j.state === 'finished'), 5_000);
    const attackers = (await lab.jobs()).filter((j) => j.name.startsWith('a'));
    assert.deepEqual(attackers.map((j) => j.state), Array(ATTACKERS).fill('booting'), 'no trickled report was stored');
    const refusals = lab.logs.filter((l) => l.includes('refused (408)'));
    assert.ok(refusals.length <= 2 * ATTACKERS, `${refusals.length} log lines for ${loris.length} refusals`);
    const byKind = (kind: string) => outcomes.filter((o) => o.kind === kind).map((o) => o.ms).sort((x, y) => x - y);
    const span = (ms: number[]) => `${ms[0]}–${ms.at(-1)} ms`;
    t.diagnostic(
      `held ${loris.length} (accepted in ${heldAtStart} ms); fleet ${Math.round(fleet.ms)} ms with ${heldAfterFleet} connections open; closed: headers ${span(byKind('headers'))}, bodies ${span(byKind('body'))}; ${refusals.length} log lines`,
    );
  });
});
