import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
// dns-packet comes with multicast-dns; here it proves our packets survive the wire format.
import dnsPacket from 'dns-packet';
import { Sightings } from '../src/mdns/discovery.ts';
import { linkKey, onLink, pickLinks, usableAddress } from '../src/mdns/interfaces.ts';
import {
  announcement,
  answer,
  conflict,
  goodbye,
  HOST_TTL,
  instanceFromBytes,
  LEGACY_TTL,
  makeService,
  OTHER_TTL,
  parseTxt,
  SERVICE_TYPE,
  SERVICES_META,
  type MdnsRecord,
  type Query,
  type Response,
} from '../src/mdns/records.ts';

const service = makeService({ instance: 'dispatch-3f2a', port: 8080, path: '/dispatch', version: '0.1.0', description: 'directory examples/workloads' });
const NAME = 'dispatch-3f2a._dispatch._tcp.local';
const HOST = 'dispatch-3f2a.local';
const ADDRESSES = ['10.77.1.1'];

const ask = (name: string, type: string, cls?: string): Query => ({ id: 0, questions: [{ name, type, ...(cls ? { class: cls } : {}) }] });
const multicast = (query: Query) => answer(query, service, ADDRESSES, { legacy: false });
const kinds = (records: readonly MdnsRecord[]) => records.map((r) => `${r.type} ${r.name}`);
/** Encode and decode with dns-packet, as multicast-dns and every peer would. */
const wire = (packet: Response) => dnsPacket.decode(dnsPacket.encode(packet as unknown as dnsPacket.Packet));

describe('the service', () => {
  test('an instance is dispatch- and four hex digits, the host name follows it', () => {
    assert.equal(instanceFromBytes(Uint8Array.of(0x3f, 0x2a)), 'dispatch-3f2a');
    assert.equal(instanceFromBytes(Uint8Array.of(0, 7)), 'dispatch-0007');
    assert.equal(service.host, HOST);
    assert.deepEqual(service.txt, ['description=directory examples/workloads', 'version=0.1.0', 'path=/dispatch']);
  });

  test('a long description is cut to fit one TXT string of 255 bytes, on a character boundary', () => {
    const long = makeService({ instance: 'dispatch-0001', port: 1, path: '/p', version: '1', description: 'é'.repeat(300) });
    const entry = long.txt[0]!;
    assert.ok(Buffer.byteLength(entry) <= 255);
    assert.match(entry, /^description=é+$/);
    assert.doesNotThrow(() => wire(announcement(long, ADDRESSES)));
  });

  test('an instance that is not one DNS label is refused', () => {
    assert.throws(() => makeService({ instance: 'a.b', port: 1, path: '/', version: '1', description: '' }), /one DNS label/);
    assert.throws(() => makeService({ instance: 'ok', port: 0, path: '/', version: '1', description: '' }), /out of range/);
  });
});

describe('answers', () => {
  test('PTR for _dispatch._tcp.local answers the instance and brings SRV, TXT and A along', () => {
    const reply = multicast(ask(SERVICE_TYPE, 'PTR'))!;
    assert.ok(reply);
    assert.equal(reply.shared, true, 'a PTR is shared: other dispatches answer it too');
    const { packet } = reply;
    assert.equal(packet.id, 0);
    assert.deepEqual(packet.questions, [], 'multicast responses carry no questions');
    assert.deepEqual(kinds(packet.answers), [`PTR ${SERVICE_TYPE}`]);
    assert.equal(packet.answers[0]!.data, NAME);
    assert.deepEqual(kinds(packet.additionals), [`SRV ${NAME}`, `TXT ${NAME}`, `A ${HOST}`]);
    const [srv, txt, a] = packet.additionals;
    assert.deepEqual(srv!.data, { priority: 0, weight: 0, port: 8080, target: HOST });
    assert.deepEqual(txt!.data, ['description=directory examples/workloads', 'version=0.1.0', 'path=/dispatch']);
    assert.equal(a!.data, '10.77.1.1');
  });

  test('TTLs: 120 s for SRV and A, 75 minutes for PTR and TXT; cache-flush only on our unique records', () => {
    const { packet } = multicast(ask(SERVICE_TYPE, 'PTR'))!;
    const all = [...packet.answers, ...packet.additionals];
    const ttl = Object.fromEntries(all.map((r) => [r.type, r.ttl]));
    assert.deepEqual(ttl, { PTR: OTHER_TTL, SRV: HOST_TTL, TXT: OTHER_TTL, A: HOST_TTL });
    const flush = Object.fromEntries(all.map((r) => [r.type, r.flush === true]));
    assert.deepEqual(flush, { PTR: false, SRV: true, TXT: true, A: true });
  });

  test('SRV answers with the addresses as additional records; TXT alone; A with this interface address only', () => {
    const srv = multicast(ask(NAME, 'SRV'))!;
    assert.deepEqual(kinds(srv.packet.answers), [`SRV ${NAME}`]);
    assert.deepEqual(kinds(srv.packet.additionals), [`A ${HOST}`]);
    assert.equal(srv.shared, false, 'unique records go out at once');
    const txt = multicast(ask(NAME, 'TXT'))!;
    assert.deepEqual(kinds(txt.packet.answers), [`TXT ${NAME}`]);
    assert.deepEqual(txt.packet.additionals, []);
    const a = answer(ask(HOST, 'A'), service, ['192.168.7.2', '192.168.7.3'], { legacy: false })!;
    assert.deepEqual(a.packet.answers.map((r) => r.data), ['192.168.7.2', '192.168.7.3']);
  });

  test('ANY for the instance answers SRV and TXT; several questions share one reply without repeats', () => {
    const any = multicast(ask(NAME, 'ANY'))!;
    assert.deepEqual(kinds(any.packet.answers), [`SRV ${NAME}`, `TXT ${NAME}`]);
    assert.deepEqual(kinds(any.packet.additionals), [`A ${HOST}`]);
    const both = multicast({ questions: [{ name: SERVICE_TYPE, type: 'PTR' }, { name: NAME, type: 'SRV' }, { name: HOST, type: 'A' }] })!;
    assert.deepEqual(kinds(both.packet.answers), [`PTR ${SERVICE_TYPE}`, `SRV ${NAME}`, `A ${HOST}`]);
    assert.deepEqual(kinds(both.packet.additionals), [`TXT ${NAME}`], 'nothing is both an answer and an additional');
  });

  test('service enumeration lists _dispatch._tcp.local', () => {
    const { packet } = multicast(ask(SERVICES_META, 'PTR'))!;
    assert.deepEqual(packet.answers, [{ name: SERVICES_META, type: 'PTR', class: 'IN', ttl: OTHER_TTL, data: SERVICE_TYPE }]);
  });

  test('names are compared case-insensitively, with or without a trailing dot', () => {
    assert.ok(multicast(ask('_DISPATCH._TCP.LOCAL', 'PTR')));
    assert.ok(multicast(ask('Dispatch-3F2A._Dispatch._tcp.local.', 'SRV')));
    assert.ok(multicast(ask('DISPATCH-3f2a.LOCAL', 'A')));
  });

  test('questions for other names, other types or other classes are not answered', () => {
    assert.equal(multicast(ask('_http._tcp.local', 'PTR')), undefined);
    assert.equal(multicast(ask('dispatch-0000._dispatch._tcp.local', 'SRV')), undefined, 'another instance');
    assert.equal(multicast(ask('dispatch-0000.local', 'A')), undefined);
    assert.equal(multicast(ask(HOST, 'AAAA')), undefined);
    assert.equal(multicast(ask(NAME, 'A')), undefined);
    assert.equal(multicast(ask(SERVICE_TYPE, 'SRV')), undefined);
    assert.equal(multicast(ask(SERVICE_TYPE, 'PTR', 'CH')), undefined);
    assert.equal(multicast({ questions: [] }), undefined);
    assert.equal(multicast({}), undefined);
  });

  test('a question with the unicast-response bit is answered like any other', () => {
    // dns-packet reads class IN|QU as "UNKNOWN_32769".
    const bytes = dnsPacket.encode({ type: 'query', questions: [{ name: SERVICE_TYPE, type: 'PTR', class: 'IN' }] });
    // The question's class is the packet's last two bytes; its top bit asks for a unicast reply.
    bytes[bytes.length - 2]! |= 0x80;
    const query = dnsPacket.decode(bytes);
    assert.equal(query.questions?.[0]?.class, 'UNKNOWN_32769');
    assert.ok(multicast(query));
  });

  test('known answers with at least half our TTL are not repeated (RFC 6762 §7.1)', () => {
    const ptr = { name: SERVICE_TYPE, type: 'PTR', ttl: OTHER_TTL / 2, data: NAME };
    assert.equal(multicast({ questions: [{ name: SERVICE_TYPE, type: 'PTR' }], answers: [ptr] }), undefined);
    assert.ok(multicast({ questions: [{ name: SERVICE_TYPE, type: 'PTR' }], answers: [{ ...ptr, ttl: 10 }] }), 'nearly expired: answer again');
    assert.ok(multicast({ questions: [{ name: SERVICE_TYPE, type: 'PTR' }], answers: [{ ...ptr, data: 'other._dispatch._tcp.local' }] }));
  });

  test('a legacy unicast query gets its id and question back, TTLs of at most 10 s and no cache-flush (RFC 6762 §6.7)', () => {
    const reply = answer({ id: 4242, questions: [{ name: SERVICE_TYPE, type: 'PTR', class: 'IN' }] }, service, ADDRESSES, { legacy: true })!;
    const { packet } = reply;
    assert.equal(packet.id, 4242);
    assert.deepEqual(packet.questions, [{ name: SERVICE_TYPE, type: 'PTR', class: 'IN' }]);
    for (const r of [...packet.answers, ...packet.additionals]) {
      assert.ok(r.ttl <= LEGACY_TTL, `${r.type} ttl ${r.ttl}`);
      assert.notEqual(r.flush, true, `${r.type} must not carry cache-flush`);
    }
    const decoded = wire(packet);
    assert.equal(decoded.id, 4242);
    assert.equal(decoded.type, 'response');
    assert.equal(decoded.flag_aa, true);
    assert.deepEqual(decoded.questions, [{ name: SERVICE_TYPE, type: 'PTR', class: 'IN' }]);
    assert.deepEqual(decoded.answers?.map((r) => [r.type, r.name]), [['PTR', SERVICE_TYPE]]);
  });

  test('a multicast reply survives the wire: cache-flush bits, TTLs and data decode as sent', () => {
    const decoded = wire(multicast(ask(SERVICE_TYPE, 'PTR'))!.packet);
    assert.equal(decoded.type, 'response');
    assert.equal(decoded.flag_aa, true);
    const srv = decoded.additionals?.find((r) => r.type === 'SRV');
    assert.deepEqual(srv && { flush: srv.flush, ttl: srv.ttl, data: srv.data }, { flush: true, ttl: HOST_TTL, data: { priority: 0, weight: 0, port: 8080, target: HOST } });
    const txt = decoded.additionals?.find((r) => r.type === 'TXT');
    assert.deepEqual([...parseTxt(txt?.data)], [['description', 'directory examples/workloads'], ['version', '0.1.0'], ['path', '/dispatch']]);
  });
});

describe('announcements and goodbyes', () => {
  test('an announcement carries PTR, SRV, TXT and this interface address as answers', () => {
    const packet = announcement(service, ADDRESSES);
    assert.equal(packet.id, 0);
    assert.deepEqual(kinds(packet.answers), [`PTR ${SERVICE_TYPE}`, `SRV ${NAME}`, `TXT ${NAME}`, `A ${HOST}`]);
    assert.ok(packet.answers.every((r) => r.ttl > 0));
  });

  test('a goodbye is the same records with TTL 0', () => {
    const packet = goodbye(service, ADDRESSES);
    assert.deepEqual(kinds(packet.answers), kinds(announcement(service, ADDRESSES).answers));
    assert.ok(packet.answers.every((r) => r.ttl === 0));
    assert.ok(wire(packet).answers?.every((r) => (r as { ttl?: number }).ttl === 0));
  });
});

describe('name conflicts', () => {
  const srv = (port: number, target = HOST) => ({ name: NAME, type: 'SRV', ttl: 120, data: { priority: 0, weight: 0, port, target } });

  test('our own records coming back, from any of our interfaces, are no conflict', () => {
    const own = announcement(service, ['10.77.1.1']).answers;
    const other = announcement(service, ['10.88.0.1']).answers;
    assert.equal(conflict([...own, ...other], service, ['10.77.1.1', '10.88.0.1']), undefined);
  });

  test('another port or host behind our instance name, or another address behind our host name, is', () => {
    assert.match(conflict([srv(9090)], service, ADDRESSES) ?? '', /dispatch-3f2a\._dispatch\._tcp\.local is also dispatch-3f2a\.local:9090/);
    assert.match(conflict([srv(8080, 'elsewhere.local')], service, ADDRESSES) ?? '', /elsewhere\.local/);
    assert.match(conflict([{ name: HOST.toUpperCase(), type: 'A', ttl: 120, data: '10.9.9.9' }], service, ADDRESSES) ?? '', /10\.9\.9\.9/);
    assert.equal(conflict([{ ...srv(9090), ttl: 0 }], service, ADDRESSES), undefined, 'a goodbye claims nothing');
    assert.equal(conflict([{ ...srv(9090), name: 'dispatch-0000._dispatch._tcp.local' }], service, ADDRESSES), undefined);
  });
});

describe('interfaces', () => {
  const table = {
    lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', internal: true }],
    eth0: [
      { address: '192.168.7.2', netmask: '255.255.255.0', family: 'IPv4', internal: false },
      { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', internal: false },
      { address: '192.168.8.2', netmask: '255.255.255.0', family: 'IPv4', internal: false },
    ],
    eth1: [{ address: '10.77.1.1', netmask: '255.255.0.0', family: 4, internal: false }],
    wg0: [{ address: 'fd00::1', netmask: 'ffff::', family: 'IPv6', internal: false }],
    down: undefined,
  };

  test('every non-loopback interface with IPv4, one entry per interface with all its addresses', () => {
    const links = pickLinks(table);
    assert.deepEqual(links.map((l) => [l.name, l.addresses.map((a) => a.address)]), [
      ['eth0', ['192.168.7.2', '192.168.8.2']],
      ['eth1', ['10.77.1.1']],
    ]);
    assert.deepEqual(pickLinks(table, '0.0.0.0').length, 2);
    assert.deepEqual(pickLinks(table, '::').length, 2);
  });

  test('bound to one address: only the interface carrying it', () => {
    assert.deepEqual(pickLinks(table, '10.77.1.1').map((l) => l.name), ['eth1']);
    assert.deepEqual(pickLinks(table, '127.0.0.1'), []);
    assert.deepEqual(pickLinks({}), []);
  });

  test('a sender belongs to the interface whose subnet holds it', () => {
    const [eth0, eth1] = pickLinks(table);
    assert.ok(onLink(eth0!, '192.168.8.77'));
    assert.ok(!onLink(eth0!, '192.168.9.77'));
    assert.ok(onLink(eth1!, '10.77.200.3'));
    assert.ok(!onLink(eth1!, 'not an address'));
    assert.notEqual(linkKey(eth0!), linkKey({ name: 'eth0', addresses: [{ address: '192.168.7.3', netmask: '255.255.255.0' }] }));
  });

  test('loopback, link-local and unspecified addresses are not usable', () => {
    assert.ok(usableAddress('10.0.0.5'));
    for (const bad of ['127.0.0.1', '127.1.2.3', '169.254.10.1', '0.0.0.0', 'fe80::1', '300.1.1.1', '']) assert.ok(!usableAddress(bad), bad);
  });
});

describe('reading answers (browse)', () => {
  const records = (addresses = ADDRESSES) => [...announcement(service, addresses).answers];

  test('PTR, SRV, TXT and A become a URL with the TXT path', () => {
    const seen = new Sightings();
    assert.equal(seen.absorb(records()), true);
    assert.deepEqual(seen.found(), [{ url: 'http://10.77.1.1:8080/dispatch', host: '10.77.1.1', port: 8080 }]);
    assert.deepEqual(seen.missing(), []);
    assert.equal(seen.absorb(records()), false, 'the same records again are no news');
  });

  test('a PTR alone asks for SRV and TXT, then for the A of the SRV target', () => {
    const seen = new Sightings();
    seen.absorb([{ name: SERVICE_TYPE, type: 'PTR', ttl: 4500, data: NAME }]);
    assert.deepEqual(seen.missing(), [{ name: NAME, type: 'SRV' }, { name: NAME, type: 'TXT' }]);
    assert.deepEqual(seen.found(), []);
    seen.absorb([{ name: NAME, type: 'SRV', ttl: 120, data: { port: 9000, target: 'Box.local' } }]);
    assert.deepEqual(seen.missing(), [{ name: NAME, type: 'TXT' }, { name: 'Box.local', type: 'A' }]);
    seen.absorb([{ name: 'box.local', type: 'A', ttl: 120, data: '192.168.7.9' }]);
    assert.deepEqual(seen.found(), [{ url: 'http://192.168.7.9:9000/dispatch', host: '192.168.7.9', port: 9000 }], 'no TXT: the default path');
    seen.absorb([{ name: NAME, type: 'TXT', ttl: 4500, data: [Buffer.from('PATH=boot'), Buffer.from('path=/ignored')] }]);
    assert.deepEqual(seen.found().map((f) => f.url), ['http://192.168.7.9:9000/boot'], 'keys are case-insensitive, the first wins');
  });

  test('loopback and link-local addresses are skipped; one URL per usable address, no duplicates', () => {
    const seen = new Sightings();
    seen.absorb(records(['127.0.0.1', '169.254.3.4', '10.77.1.1', '10.88.0.1']));
    seen.absorb(records(['10.77.1.1']));
    assert.deepEqual(seen.found().map((f) => f.url), ['http://10.77.1.1:8080/dispatch', 'http://10.88.0.1:8080/dispatch']);
  });

  test('two instances are two services, in the order heard; a goodbye removes one', () => {
    const other = makeService({ instance: 'dispatch-beef', port: 8081, path: '/dispatch', version: '0.1.0', description: '' });
    const seen = new Sightings();
    seen.absorb(records());
    seen.absorb(announcement(other, ADDRESSES).answers);
    assert.deepEqual(seen.found().map((f) => f.url), ['http://10.77.1.1:8080/dispatch', 'http://10.77.1.1:8081/dispatch']);
    assert.equal(seen.absorb(goodbye(service, ADDRESSES).answers), true);
    assert.deepEqual(seen.found().map((f) => f.url), ['http://10.77.1.1:8081/dispatch']);
  });

  test('records for other services and malformed data are ignored', () => {
    const seen = new Sightings();
    seen.absorb([
      { name: '_http._tcp.local', type: 'PTR', ttl: 4500, data: 'web._http._tcp.local' },
      { name: SERVICE_TYPE, type: 'PTR', ttl: 4500, data: 'stray._http._tcp.local' },
      { name: NAME, type: 'SRV', ttl: 120, data: 'nonsense' },
      { name: SERVICE_TYPE, type: 'PTR', ttl: 4500 },
    ]);
    assert.deepEqual(seen.names(), []);
    assert.deepEqual(seen.found(), []);
  });
});
