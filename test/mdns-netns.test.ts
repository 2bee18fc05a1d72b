/**
 * mDNS for real, between network namespaces joined by a veth pair: dispatch (the CLI) in
 * namespace A, resolvers and browsers in B. Skipped, with the reason, where namespaces cannot
 * be made (not root, no iproute2); the dig and avahi checks skip on their own when those tools
 * are missing (Debian: bind9-dnsutils; avahi-daemon, avahi-utils, dbus).
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, unavailable, which, type Started } from './netns/lab.ts';

const reason = await unavailable();
const missingDig = (await which('dig')) ? undefined : 'dig is not installed (Debian: apt-get install bind9-dnsutils)';
const missingAvahi = (await Promise.all(['avahi-daemon', 'avahi-browse', 'dbus-daemon'].map(which))).every(Boolean)
  ? undefined
  : 'avahi is not installed (Debian: apt-get install avahi-daemon avahi-utils dbus)';

const NET = `10.77.${(process.pid % 200) + 20}`;
const LATE = `10.78.${(process.pid % 200) + 20}`;
const SERVER = `${NET}.1`;
const FIRST_PORT = 18080;
const SECOND_PORT = 18081;

interface Heard {
  at: number;
  from: string;
  name: string;
  type: string;
  ttl: number;
  data: unknown;
}

interface LegacyReply {
  from: string;
  reply: { id: number; type: string; questions: unknown[]; answers: Heard[]; additionals: Heard[] };
}

describe('mDNS between two network namespaces', { skip: reason && `skipped: ${reason}` }, () => {
  const lab = new Lab();
  let a = '';
  let b = '';
  let scratch = '';
  let listener: Started;
  let first: { started: Started; instance: string };
  /** Set once avahi runs in B. */
  let avahiEnv: NodeJS.ProcessEnv | undefined;

  const heard = (): Heard[] =>
    listener.stdout.text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Heard);

  /** The real CLI, advertising (no --no-mdns), inside namespace A. */
  const dispatch = async (port: number) => {
    const started = lab.spawn(a, process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--dir', 'examples/workloads', '--bind', `0.0.0.0:${port}`, '--reports', join(scratch, `reports-${port}`), '--state-dir', join(scratch, `state-${port}`)]);
    const [, instance] = await started.stdout.wait(/mdns {2}advertising (dispatch-[0-9a-f]{4})\._dispatch\._tcp\.local on \S+ \(([\d.]+)\) port (\d+)/);
    await started.stdout.wait(/listening on/);
    return { started, instance: instance! };
  };

  const browse = async (ns: string, timeoutMs = 8_000) => {
    const result = await lab.exec(ns, process.execPath, ['--import', 'tsx', 'test/netns/browse.ts', String(timeoutMs)]);
    assert.equal(result.code, 0, result.stderr);
    return { ...(JSON.parse(result.stdout) as { found: Array<{ url: string; host: string; port: number }>; heads: unknown[] }), log: result.stderr };
  };

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'dispatch-mdns-'));
    a = await lab.namespace('a');
    b = await lab.namespace('b');
    await lab.link(a, b, NET, 0);
    listener = lab.spawn(b, process.execPath, ['--import', 'tsx', 'test/netns/listen.ts']);
    await listener.stdout.wait(/listening/);
    first = await dispatch(FIRST_PORT);
  });

  after(async () => {
    await lab.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test('dispatch announces itself at start: PTR, SRV, TXT and the link address, twice, a second apart', async () => {
    await listener.stdout.wait(new RegExp(`(?:"name":"_dispatch\\._tcp\\.local".*){2}`, 's'), 5_000);
    const name = `${first.instance}._dispatch._tcp.local`;
    const announcements = heard().filter((r) => r.type === 'PTR' && r.data === name && r.ttl > 0);
    assert.ok(announcements.length >= 2, `two announcements, heard ${announcements.length}`);
    const gap = announcements[1]!.at - announcements[0]!.at;
    assert.ok(gap >= 800 && gap <= 1_500, `a second apart, not ${gap} ms`);
    assert.equal(announcements[0]!.from, `${SERVER}:5353`);
    const records = heard().filter((r) => r.at === announcements[0]!.at);
    assert.deepEqual(records.find((r) => r.type === 'SRV')?.data, { priority: 0, weight: 0, port: FIRST_PORT, target: `${first.instance}.local` });
    assert.deepEqual(records.filter((r) => r.type === 'A').map((r) => r.data), [SERVER], 'only the address valid on this link');
    const txt = records.find((r) => r.type === 'TXT')?.data as string[];
    assert.deepEqual(txt.filter((t) => !t.startsWith('description=')), ['version=0.1.0', 'path=/dispatch']);
    assert.match(txt[0]!, /^description=directory .*examples\/workloads$/);
    assert.doesNotMatch(first.started.stdout.text, /name conflict/, 'our own looped-back packets are no conflict');
  });

  test('an independent resolver (dig, a unicast query to port 5353) gets PTR, SRV, TXT and A', { skip: missingDig }, async () => {
    // `dig @224.0.0.251` cannot work with BIND 9.18's dig: it connect()s its UDP socket to the
    // group, so the kernel drops the unicast reply from the responder's own address (avahi's
    // too). Asking the responder's address on port 5353 from a random port is the same legacy
    // unicast query (RFC 6762 §6.7) with a reply dig accepts.
    const result = await lab.exec(b, 'dig', ['-p', '5353', `@${SERVER}`, '_dispatch._tcp.local', 'PTR', '+time=2', '+tries=2', '+noall', '+answer', '+additional']);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.split('\n').map((l) => l.split(/\s+/).join(' '));
    const name = `${first.instance}._dispatch._tcp.local.`;
    assert.ok(lines.includes(`_dispatch._tcp.local. 10 IN PTR ${name}`), result.stdout);
    assert.ok(lines.includes(`${name} 10 IN SRV 0 0 ${FIRST_PORT} ${first.instance}.local.`), result.stdout);
    assert.ok(lines.some((l) => l.startsWith(`${name} 10 IN TXT "description=`) && l.endsWith('"version=0.1.0" "path=/dispatch"')), result.stdout);
    assert.ok(lines.includes(`${first.instance}.local. 10 IN A ${SERVER}`), result.stdout);
  });

  test('a legacy unicast query to the group is answered by unicast with its id and question, TTLs at most 10 s', async () => {
    const result = await lab.exec(b, process.execPath, ['--import', 'tsx', 'test/netns/legacy-query.ts', `${NET}.2`]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const replies = JSON.parse(result.stdout) as LegacyReply[];
    assert.deepEqual(replies.map((r) => r.from), [`${SERVER}:5353`]);
    const { reply } = replies[0]!;
    assert.equal(reply.type, 'response');
    assert.equal(reply.id, 4321);
    assert.deepEqual(reply.questions, [{ name: '_dispatch._tcp.local', type: 'PTR', class: 'IN' }]);
    assert.deepEqual(reply.answers.map((r) => r.data), [`${first.instance}._dispatch._tcp.local`]);
    for (const r of [...reply.answers, ...reply.additionals]) assert.ok(r.ttl <= 10, `${r.type} ttl ${r.ttl}`);
  });

  test('browseDispatch in the other namespace finds the URL, and dispatch answers there', async () => {
    const { found, heads, log } = await browse(b);
    assert.deepEqual(found, [{ url: `http://${SERVER}:${FIRST_PORT}/dispatch`, host: SERVER, port: FIRST_PORT }], log);
    assert.deepEqual(heads, [200]);
  });

  test('avahi-browse resolves it', { skip: missingAvahi }, async () => {
    const bus = join(scratch, 'bus.sock');
    await writeFile(join(scratch, 'bus.conf'), busConfig(bus));
    await writeFile(join(scratch, 'avahi.conf'), AVAHI_CONFIG);
    const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus}` };
    // A private bus (the unix socket is reachable from every namespace) and an avahi-daemon in B;
    // its pid file goes to a tmpfs mounted only in its own mount namespace (ip netns exec makes one).
    const dbus = lab.spawn(b, 'dbus-daemon', ['--config-file', join(scratch, 'bus.conf'), '--nofork', '--nopidfile', '--print-address']);
    await dbus.stdout.wait(/unix:/);
    const avahi = lab.spawn(b, 'sh', ['-c', `mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && exec avahi-daemon -f ${join(scratch, 'avahi.conf')} --no-drop-root --no-chroot --no-rlimits`], env);
    await avahi.stderr.wait(/Server startup complete/);
    avahiEnv = env;
    const result = await lab.exec(b, 'avahi-browse', ['-rpt', '_dispatch._tcp'], { env, timeoutMs: 10_000 });
    assert.equal(result.code, 0, result.stderr);
    const resolved = result.stdout.split('\n').filter((l) => l.startsWith('=;'));
    const fields = resolved.map((l) => l.split(';'));
    assert.deepEqual(
      fields.map((f) => f.slice(2, 9)),
      [['IPv4', first.instance, '_dispatch._tcp', 'local', `${first.instance}.local`, SERVER, String(FIRST_PORT)]],
      result.stdout,
    );
    assert.match(fields[0]![9]!, /"path=\/dispatch"/);
    assert.match(fields[0]![9]!, /"version=0\.1\.0"/);
  });

  test('an avahi-daemon on the same host keeps working: it still gets unicast, dispatch answers multicast', { skip: missingAvahi }, async (t) => {
    if (!avahiEnv) return t.skip('avahi did not start in the test before');
    const port = 18082;
    const started = lab.spawn(b, process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--dir', 'examples/workloads', '--bind', `0.0.0.0:${port}`, '--reports', join(scratch, 'reports-b'), '--state-dir', join(scratch, 'state-b')]);
    try {
      const [, instance] = await started.stdout.wait(/advertising (dispatch-[0-9a-f]{4})\./);
      assert.match(started.stdout.text, /port 5353 is shared with another responder/);
      // A unicast query to B's port 5353 reaches avahi, not dispatch (a wildcard bind would take it).
      // Listening on the group only, dispatch still answers a legacy query sent there, by unicast.
      const [dig, { found, log }, legacy, avahi] = await Promise.all([
        missingDig ? undefined : lab.exec(a, 'dig', ['-p', '5353', `@${NET}.2`, 'resolver-b.local', 'A', '+short', '+time=2', '+tries=2']),
        browse(a),
        lab.exec(a, process.execPath, ['--import', 'tsx', 'test/netns/legacy-query.ts', SERVER]),
        lab.exec(b, 'avahi-browse', ['-rpt', '_dispatch._tcp'], { env: avahiEnv, timeoutMs: 10_000 }),
      ]);
      if (dig) assert.equal(dig.stdout.trim(), `${NET}.2`, dig.stdout + dig.stderr);
      assert.ok(found.some((f) => f.url === `http://${NET}.2:${port}/dispatch`), log);
      const fromB = (JSON.parse(legacy.stdout) as LegacyReply[]).filter((r) => r.from === `${NET}.2:5353`);
      assert.deepEqual(fromB.map((r) => [r.reply.id, r.reply.answers.map((x) => x.data)]), [[4321, [`${instance}._dispatch._tcp.local`]]], legacy.stdout);
      assert.match(avahi.stdout, new RegExp(`^=;[^;]*;IPv4;${instance};_dispatch\\._tcp;local;${instance}\\.local;${NET.replace(/\./g, '\\.')}\\.2;${port};`, 'm'), avahi.stdout);
    } finally {
      assert.equal(await started.stop('SIGTERM'), 0);
    }
  });

  test('two dispatch instances on one segment get distinct names and both are found', async () => {
    const second = await dispatch(SECOND_PORT);
    try {
      assert.notEqual(second.instance, first.instance);
      const { found, log } = await browse(b);
      assert.deepEqual(found.map((f) => f.url).sort(), [`http://${SERVER}:${FIRST_PORT}/dispatch`, `http://${SERVER}:${SECOND_PORT}/dispatch`], log);
      assert.match(log, new RegExp(`heard ${first.instance}\\._dispatch`));
      assert.match(log, new RegExp(`heard ${second.instance}\\._dispatch`));

      // A stop says goodbye: the same records with TTL 0, and browsers no longer find it.
      const watching = avahiEnv && lab.spawn(b, 'avahi-browse', ['-rp', '_dispatch._tcp'], avahiEnv);
      await watching?.stdout.wait(new RegExp(`^=;[^;]*;IPv4;${second.instance};`, 'm'), 5_000);
      assert.equal(await second.started.stop('SIGTERM'), 0);
      assert.match(second.started.stdout.text, /said goodbye/);
      const name = `${second.instance}._dispatch._tcp.local`;
      await listener.stdout.wait(new RegExp(`"type":"PTR","ttl":0,"data":"${name.replace(/\./g, '\\.')}"`), 3_000);
      const goodbye = heard().filter((r) => r.ttl === 0 && (r.name === name || r.data === name || r.name === `${second.instance}.local`));
      assert.deepEqual(new Set(goodbye.map((r) => r.type)), new Set(['PTR', 'SRV', 'TXT', 'A']));
      // avahi drops a record one second after its goodbye (RFC 6762 §10.1).
      await watching?.stdout.wait(new RegExp(`^-;[^;]*;IPv4;${second.instance};`, 'm'), 3_000);
      await watching?.stop('SIGTERM');
      const after = await browse(b);
      assert.deepEqual(after.found.map((f) => f.url), [`http://${SERVER}:${FIRST_PORT}/dispatch`], after.log);
    } finally {
      await second.started.stop('SIGKILL');
    }
  });

  test('two responders claiming one name: one of them picks a new name', async () => {
    const result = await lab.exec(a, process.execPath, ['--import', 'tsx', 'test/netns/conflict.ts']);
    assert.equal(result.code, 0, result.stderr);
    const { instances, logs } = JSON.parse(result.stdout) as { instances: string[]; logs: string[] };
    assert.notEqual(instances[0], instances[1], logs.join('\n'));
    assert.ok(logs.some((l) => /name conflict \(dispatch-0001\._dispatch\._tcp\.local is also dispatch-0001\.local:1809\d\)/.test(l)), logs.join('\n'));
  });

  test('an interface that comes up after start is advertised there, with its own address', async () => {
    const c = await lab.namespace('c');
    await lab.link(a, c, LATE, 1);
    // dispatch reads the interfaces again every 5 s; the browse hears the announcement then.
    const { found, log } = await browse(c, 9_000);
    assert.deepEqual(found.map((f) => f.url), [`http://${LATE}.1:${FIRST_PORT}/dispatch`], log);
    assert.match(first.started.stdout.text, new RegExp(`advertising ${first.instance}\\._dispatch\\._tcp\\.local on \\S+ \\(${LATE.replace(/\./g, '\\.')}\\.1\\)`));
  });
});

const AVAHI_CONFIG = `[server]
host-name=resolver-b
use-ipv4=yes
use-ipv6=no
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
`;

function busConfig(socket: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`;
}
