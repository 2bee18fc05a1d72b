/**
 * The mDNS responder: the only file that advertises through multicast-dns. What to say lives
 * in records.ts; this file owns the sockets, the timers and which interface answers what.
 */
import makeMdns from 'multicast-dns';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { linkKey, onLink, pickLinks, type InterfaceTable, type LinkInfo } from './interfaces.ts';
import { announcement, answer, conflict, goodbye, instanceFromBytes, instanceName, makeService, MDNS_ADDRESS, MDNS_PORT, type Response, type Service } from './records.ts';

export interface AdvertiserOptions {
  /** The HTTP server's port and path. */
  readonly port: number;
  readonly path: string;
  readonly version: string;
  readonly description: string;
  /** One DNS label; `dispatch-XXXX` with random hex when absent. */
  readonly instance?: string;
  readonly log: (message: string) => void;
  /** The HTTP server's bind host: when it is one address, only the interface carrying it is advertised on. */
  readonly bindHost?: string;
  /** `os.networkInterfaces`, replaceable in tests. */
  readonly interfaces?: () => InterfaceTable;
  /** How often the interfaces are read again, so a link that comes up later gets advertised; 0: never. */
  readonly rescanMs?: number;
  /** Unsolicited announcements at start (RFC 6762 §8.3: at least two, one second apart). */
  readonly announcements?: number;
  readonly announceIntervalMs?: number;
}

export interface Advertiser {
  /** The current instance label, e.g. `dispatch-3f2a` (a name conflict picks a new one). */
  readonly instance: string;
  /** Open the sockets and announce; resolves once every socket is bound (or failed, which is logged). */
  start(): Promise<void>;
  /** Say goodbye (TTL 0) on every interface and close the sockets. */
  stop(): Promise<void>;
}

interface Link {
  readonly info: LinkInfo;
  readonly key: string;
  readonly addresses: readonly string[];
  readonly mdns: makeMdns.MulticastDNS;
  ready: boolean;
  closed: boolean;
  readonly bound: Promise<boolean>;
}

/** After this many renames something else is wrong (a responder echoing us): stop renaming. */
const MAX_RENAMES = 5;

export function createAdvertiser(options: AdvertiserOptions): Advertiser {
  const { log } = options;
  const readInterfaces = options.interfaces ?? (networkInterfaces as () => InterfaceTable);
  const rescanMs = options.rescanMs ?? 5_000;
  const announcements = options.announcements ?? 2;
  const announceIntervalMs = options.announceIntervalMs ?? 1_000;
  const describe = (instance: string) =>
    makeService({ instance, port: options.port, path: options.path, version: options.version, description: options.description });
  let service: Service = describe(options.instance ?? instanceFromBytes(randomBytes(2)));
  let renames = 0;

  const links: Link[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let rescanTimer: NodeJS.Timeout | undefined;
  let started: Promise<void> | undefined;
  let listenOn = '0.0.0.0';
  let stopped: Promise<void> | undefined;

  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  const send = (link: Link, packet: Response, to?: { address: string; port: number }) =>
    new Promise<void>((resolve) => {
      if (link.closed) return resolve();
      // @types/dns-packet has no "ANY" question type, which dns-packet encodes (255) and a legacy echo may carry.
      link.mdns.respond(packet as unknown as makeMdns.ResponseOutgoingPacket, to ?? { address: MDNS_ADDRESS, port: MDNS_PORT }, (err) => {
        if (err) log(`cannot send on ${link.info.name}: ${err.message}`);
        resolve();
      });
    });

  let isStopping = false;

  const announce = (link: Link, count = announcements) => {
    if (isStopping || !links.includes(link) || count <= 0) return;
    void send(link, announcement(service, link.addresses));
    later(announceIntervalMs, () => announce(link, count - 1));
  };

  // Every socket on port 5353 hears the multicast of *every* interface (Linux
  // IP_MULTICAST_ALL), while a query sent to our unicast address reaches just one of them, and
  // Node cannot tell which interface a packet came in on nor to which address it was sent.
  // So the first socket to see a query handles it once, for the interface whose subnet holds
  // the sender; a sender on no subnet of ours (a link-local peer, say) is answered on every
  // interface, each with its own address.
  const owner = (address: string) => links.find((l) => l.ready && onLink(l.info, address));
  const seen = new Set<string>();

  const onQuery = (link: Link, query: makeMdns.QueryPacket, from: { address: string; port: number }) => {
    if (isStopping || !link.ready) return;
    const key = `${from.address}|${from.port}|${query.id}|${JSON.stringify(query.questions)}|${query.answers?.length ?? 0}`;
    if (seen.has(key)) return;
    seen.add(key);
    later(250, () => seen.delete(key));
    const home = owner(from.address);
    if (from.port !== MDNS_PORT) {
      // Legacy unicast (RFC 6762 §6.7): one reply to the sender; routing picks the interface.
      const reply = answer(query, service, (home ?? link).addresses, { legacy: true });
      if (reply) void send(link, reply.packet, { address: from.address, port: from.port });
      return;
    }
    for (const target of home ? [home] : links.filter((l) => l.ready)) {
      const reply = answer(query, service, target.addresses, { legacy: false });
      if (!reply) continue;
      if (reply.shared) later(20 + Math.floor(Math.random() * 100), () => void send(target, reply.packet));
      else void send(target, reply.packet);
    }
  };

  const onResponse = (response: makeMdns.ResponsePacket) => {
    if (isStopping) return;
    const own = links.flatMap((l) => l.addresses);
    const clash = conflict([...(response.answers ?? []), ...(response.additionals ?? [])], service, own);
    if (!clash) return;
    if (renames >= MAX_RENAMES) return;
    renames += 1;
    const old = instanceName(service);
    service = describe(instanceFromBytes(randomBytes(2)));
    log(`name conflict (${clash}): ${old} is now ${instanceName(service)}`);
    for (const link of links) if (link.ready) announce(link);
  };

  const open = (info: LinkInfo): Link => {
    const first = info.addresses[0]!.address;
    // `interface` alone makes multicast-dns bind to that address, and a socket bound to a
    // unicast address receives no multicast on Linux: bind the wildcard (or the group), and
    // send out of `interface`. reuseAddr shares port 5353 with avahi-daemon and the like.
    const mdns = makeMdns({ interface: first, bind: listenOn, port: MDNS_PORT, reuseAddr: true, loopback: true });
    let resolveBound!: (ok: boolean) => void;
    const link: Link = {
      info,
      key: linkKey(info),
      addresses: info.addresses.map((a) => a.address),
      mdns,
      ready: false,
      closed: false,
      bound: new Promise<boolean>((resolve) => (resolveBound = resolve)),
    };
    const warned = new Set<string>();
    mdns.on('warning', (err: Error) => {
      // multicast-dns retries a failed group join every 5 s: say it once.
      if (warned.has(err.message)) return;
      warned.add(err.message);
      log(`${info.name}: ${err.message}`);
    });
    mdns.on('error', (err: Error) => {
      // multicast-dns reports a failed bind twice (the socket's error and the bind callback's).
      if (warned.has(`error ${err.message}`)) return;
      warned.add(`error ${err.message}`);
      log(`cannot use port ${MDNS_PORT} on ${info.name} (${first}): ${err.message}`);
      resolveBound(false);
    });
    mdns.on('ready', () => {
      link.ready = true;
      resolveBound(true);
      log(`advertising ${instanceName(service)} on ${info.name} (${link.addresses.join(', ')}) port ${options.port}`);
      announce(link);
    });
    mdns.on('query', (query, rinfo) => onQuery(link, query, rinfo));
    mdns.on('response', (response) => onResponse(response));
    return link;
  };

  const close = (link: Link) =>
    new Promise<void>((resolve) => {
      link.closed = true;
      try {
        link.mdns.destroy(() => resolve());
      } catch {
        resolve();
      }
    });

  const current = () => pickLinks(readInterfaces(), options.bindHost);

  const rescan = () => {
    if (isStopping) return;
    let found: LinkInfo[];
    try {
      found = current();
    } catch (err) {
      log(`cannot read the network interfaces: ${(err as Error).message}`);
      return;
    }
    const keys = new Set(found.map(linkKey));
    for (const link of [...links]) {
      if (keys.has(link.key)) continue;
      links.splice(links.indexOf(link), 1);
      log(`${link.info.name} (${link.addresses.join(', ')}) is gone: no longer advertised there`);
      void close(link);
    }
    for (const info of found) {
      if (!links.some((l) => l.key === linkKey(info))) links.push(open(info));
    }
  };

  const bindLoopback = options.bindHost !== undefined && /^(127\.|::1$|localhost$)/.test(options.bindHost);

  return {
    get instance() {
      return service.instance;
    },
    start() {
      started ??= (async () => {
        if (bindLoopback) {
          log(`not advertised: the HTTP server listens on ${options.bindHost} only`);
          return;
        }
        // Sockets sharing a port all get every multicast datagram, but a unicast one goes to
        // just one of them (on Linux the last bound). Bound to the wildcard we would take the
        // unicast queries and replies meant for an avahi-daemon already on this host; bound to
        // the group we hear only multicast (legacy queries to the group included) and leave
        // unicast to it. Alone on the port, the wildcard answers direct unicast queries too.
        if (await portTaken()) {
          listenOn = MDNS_ADDRESS;
          log(`port ${MDNS_PORT} is shared with another responder (avahi-daemon?): answering multicast queries only`);
        }
        rescan();
        if (links.length === 0) {
          const where = options.bindHost && options.bindHost !== '0.0.0.0' && options.bindHost !== '::' ? `carrying ${options.bindHost}` : 'with an IPv4 address';
          log(`not advertised yet: no network interface ${where}${rescanMs > 0 ? ' (will advertise when one comes up)' : ''}`);
        }
        if (rescanMs > 0 && !isStopping) {
          rescanTimer = setInterval(rescan, rescanMs);
          rescanTimer.unref();
        }
        await Promise.all(links.map((l) => l.bound));
      })();
      return started;
    },
    stop() {
      stopped ??= (async () => {
        isStopping = true;
        if (rescanTimer) clearInterval(rescanTimer);
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        await started;
        const all = links.splice(0);
        // Goodbyes go out before the sockets close; a send that never calls back must not hold up a stop.
        await Promise.race([
          Promise.all(all.filter((l) => l.ready).map((l) => send(l, goodbye(service, l.addresses)))),
          new Promise<void>((resolve) => setTimeout(resolve, 1_000).unref()),
        ]);
        if (all.some((l) => l.ready)) log(`said goodbye: ${instanceName(service)}`);
        await Promise.all(all.map(close));
      })();
      return stopped;
    },
  };
}

/** Whether another program already holds UDP port 5353 (avahi-daemon, systemd-resolved, another dispatch). */
function portTaken(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createSocket({ type: 'udp4', reuseAddr: false });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      try {
        probe.close();
      } catch {
        // Never bound: nothing to close.
      }
      resolve(err.code === 'EADDRINUSE');
    });
    probe.bind(MDNS_PORT, '0.0.0.0', () => probe.close(() => resolve(false)));
  });
}
