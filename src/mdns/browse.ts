/**
 * Find dispatch servers on the local links: ask for `_dispatch._tcp.local` PTR on every IPv4
 * interface, follow up on missing SRV/TXT/A, and turn what comes back into URLs.
 * The socket side of discovery.ts; never throws for network trouble.
 */
import makeMdns from 'multicast-dns';
import { networkInterfaces } from 'node:os';
import { Sightings, type FoundService, type FollowUp } from './discovery.ts';
import { pickLinks, type InterfaceTable, type LinkInfo } from './interfaces.ts';
import { MDNS_ADDRESS, MDNS_PORT, SERVICE_TYPE } from './records.ts';

export type { FoundService } from './discovery.ts';

export interface BrowseOptions {
  /** Give up after this long and return what was found. */
  readonly timeoutMs: number;
  readonly log?: (message: string) => void;
  /** `os.networkInterfaces`, replaceable in tests. */
  readonly interfaces?: () => InterfaceTable;
  /** Return early once something was found and nothing new arrived for this long. */
  readonly quietMs?: number;
}

/**
 * Every dispatch heard within `timeoutMs` as `http://<address>:<port><path>` (TXT `path`,
 * `/dispatch` when absent), loopback and link-local addresses skipped, in the order heard.
 * Returns early once answers stop arriving.
 */
export async function browseDispatch(options: { timeoutMs: number; log?: (m: string) => void }): Promise<Array<{ url: string; host: string; port: number }>> {
  return browse(options);
}

const QUERY_TARGET = { address: MDNS_ADDRESS, port: MDNS_PORT };

export async function browse(options: BrowseOptions): Promise<FoundService[]> {
  const log = options.log ?? (() => undefined);
  const quietMs = options.quietMs ?? 1_500;
  let links: LinkInfo[];
  try {
    links = pickLinks((options.interfaces ?? (networkInterfaces as () => InterfaceTable))());
  } catch (err) {
    log(`mdns: cannot read the network interfaces: ${(err as Error).message}`);
    return [];
  }
  if (links.length === 0) {
    log('mdns: no network interface with an IPv4 address to browse on');
    return [];
  }

  return new Promise<FoundService[]>((resolve) => {
    const sightings = new Sightings();
    const sockets = new Set<makeMdns.MulticastDNS>();
    const asked = new Map<string, number>();
    const started = Date.now();
    let lastNews = started;
    let done = false;

    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearInterval(tick);
      for (const timer of requeries) clearTimeout(timer);
      for (const socket of sockets) {
        try {
          socket.destroy();
        } catch {
          // Closing is best effort; the answer is already known.
        }
      }
      const found = sightings.found();
      log(`mdns: ${found.length === 0 ? 'no dispatch found' : `found ${found.map((f) => f.url).join(', ')}`} after ${Date.now() - started} ms`);
      resolve(found);
    };

    const query = (socket: makeMdns.MulticastDNS, questions: ReadonlyArray<{ name: string; type: 'PTR' | FollowUp['type'] }>) => {
      if (done) return;
      try {
        socket.query({ questions: questions.map((q) => ({ ...q, class: 'IN' as const })) }, QUERY_TARGET, (err) => {
          if (err && !done) log(`mdns: cannot send a query: ${err.message}`);
        });
      } catch (err) {
        log(`mdns: cannot send a query: ${(err as Error).message}`);
      }
    };
    const everywhere = (questions: ReadonlyArray<{ name: string; type: 'PTR' | FollowUp['type'] }>) => {
      for (const socket of sockets) query(socket, questions);
    };

    /** SRV/TXT/A that the answers so far lacked, each asked at most once a second. */
    const followUp = () => {
      const now = Date.now();
      const due = sightings.missing().filter((q) => now - (asked.get(`${q.type} ${q.name.toLowerCase()}`) ?? -Infinity) >= 1_000);
      if (due.length === 0) return;
      for (const q of due) asked.set(`${q.type} ${q.name.toLowerCase()}`, now);
      everywhere(due);
    };

    const heard = (packet: makeMdns.ResponsePacket) => {
      if (done) return;
      const before = new Set(sightings.names());
      if (!sightings.absorb([...(packet.answers ?? []), ...(packet.additionals ?? [])])) return;
      lastNews = Date.now();
      for (const name of sightings.names()) if (!before.has(name)) log(`mdns: heard ${name}`);
      followUp();
    };

    const open = (link: LinkInfo, port: number) => {
      const address = link.addresses[0]!.address;
      // Port 5353 (shared, reuseAddr) hears multicast answers and announcements. Bound to the
      // group, not the wildcard, so unicast meant for an avahi-daemon here still reaches it.
      // When the port cannot be had, an ephemeral one makes these one-shot queries (RFC 6762
      // §5.1), answered by unicast.
      const socket = makeMdns({ interface: address, bind: port === MDNS_PORT ? MDNS_ADDRESS : '0.0.0.0', port, reuseAddr: true, loopback: true });
      sockets.add(socket);
      let ready = false;
      let failed = false;
      socket.on('warning', (err: Error) => log(`mdns: ${link.name}: ${err.message}`));
      // multicast-dns reports a failed bind twice (the socket's error and the bind callback's).
      socket.on('error', (err: Error) => {
        if (done || failed) return;
        if (!ready && port === MDNS_PORT) {
          failed = true;
          log(`mdns: port ${MDNS_PORT} unavailable on ${link.name} (${err.message}): asking from another port`);
          sockets.delete(socket);
          try {
            socket.destroy();
          } catch {
            // Already unusable.
          }
          try {
            open(link, 0);
          } catch (fallback) {
            log(`mdns: cannot open a socket on ${link.name}: ${(fallback as Error).message}`);
          }
        } else {
          log(`mdns: ${link.name}: ${err.message}`);
        }
      });
      socket.on('ready', () => {
        ready = true;
        query(socket, [{ name: SERVICE_TYPE, type: 'PTR' }]);
      });
      socket.on('response', (packet, rinfo) => {
        // RFC 6762 §11: a response from any port but 5353 is not mDNS.
        if (rinfo.port !== MDNS_PORT) return;
        heard(packet);
      });
    };

    const deadline = setTimeout(finish, Math.max(0, options.timeoutMs));
    // Ask again at 1, 3, 7 s…: a lost packet or a responder that came up late still gets heard.
    const requeries: NodeJS.Timeout[] = [];
    for (let at = 1_000; at < options.timeoutMs; at = at * 2 + 1_000) {
      requeries.push(setTimeout(() => everywhere([{ name: SERVICE_TYPE, type: 'PTR' }]), at));
    }
    const tick = setInterval(() => {
      if (done) return;
      followUp();
      if (sightings.found().length > 0 && Date.now() - lastNews >= quietMs) finish();
    }, 100);

    for (const link of links) {
      try {
        open(link, MDNS_PORT);
      } catch (err) {
        log(`mdns: cannot open a socket on ${link.name}: ${(err as Error).message}`);
      }
    }
    log(`mdns: browsing for ${SERVICE_TYPE} on ${links.map((l) => `${l.name} (${l.addresses[0]!.address})`).join(', ')}`);
  });
}
