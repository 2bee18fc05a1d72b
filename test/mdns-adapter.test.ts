import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { browse, browseDispatch, createAdvertiser } from '../src/mdns/index.ts';

const options = { port: 8080, path: '/dispatch', version: '0.1.0', description: 'test' };

describe('the advertiser without a network', () => {
  test('bound to loopback only: says it is not advertised and opens nothing', async () => {
    const logs: string[] = [];
    const advertiser = createAdvertiser({ ...options, bindHost: '127.0.0.1', log: (m) => logs.push(m), interfaces: () => assert.fail('no interface is read') });
    await advertiser.start();
    await advertiser.stop();
    assert.deepEqual(logs, ['not advertised: the HTTP server listens on 127.0.0.1 only']);
    assert.match(advertiser.instance, /^dispatch-[0-9a-f]{4}$/);
  });

  test('no IPv4 interface: says so, and stop is immediate', async () => {
    const logs: string[] = [];
    const advertiser = createAdvertiser({ ...options, instance: 'dispatch-beef', rescanMs: 0, log: (m) => logs.push(m), interfaces: () => ({ lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', internal: true }] }) });
    await advertiser.start();
    await advertiser.stop();
    await advertiser.stop();
    assert.equal(advertiser.instance, 'dispatch-beef');
    assert.deepEqual(logs, ['not advertised yet: no network interface with an IPv4 address']);
  });

  test('an instance that is not one DNS label is refused at once', () => {
    assert.throws(() => createAdvertiser({ ...options, instance: 'my.dispatch', log: () => undefined }), /one DNS label/);
  });
});

describe('browsing without a network', () => {
  test('no interface: nothing found, no throw, one log line', async () => {
    const logs: string[] = [];
    const started = Date.now();
    assert.deepEqual(await browse({ timeoutMs: 5_000, log: (m) => logs.push(m), interfaces: () => ({}) }), []);
    assert.ok(Date.now() - started < 1_000, 'returns at once');
    assert.deepEqual(logs, ['mdns: no network interface with an IPv4 address to browse on']);
  });

  test('unreadable interfaces: nothing found, no throw', async () => {
    const found = await browse({ timeoutMs: 100, interfaces: () => { throw new Error('boom'); } });
    assert.deepEqual(found, []);
  });

  test('browseDispatch keeps the signature beacon relies on', () => {
    const check: (options: { timeoutMs: number; log?: (m: string) => void }) => Promise<Array<{ url: string; host: string; port: number }>> = browseDispatch;
    assert.equal(typeof check, 'function');
  });
});
