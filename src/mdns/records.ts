/**
 * DNS-SD over mDNS for `_dispatch._tcp.local`, as plain data: the records we advertise, the
 * answer to a query, announcements and goodbyes, and reading what others answer.
 * Pure: no sockets, no clock. The packets are shaped for dns-packet (multicast-dns encodes them).
 */

export const SERVICE_TYPE = '_dispatch._tcp.local';
/** DNS-SD service enumeration (RFC 6763 §9): lists the service types on the link. */
export const SERVICES_META = '_services._dns-sd._udp.local';
export const MDNS_ADDRESS = '224.0.0.251';
export const MDNS_PORT = 5353;
export const DEFAULT_PATH = '/dispatch';

/** RFC 6762 §10: records naming a host (SRV, A) live 120 s, the others 75 minutes. */
export const HOST_TTL = 120;
export const OTHER_TTL = 4500;
/** RFC 6762 §6.7: answers to a legacy unicast query carry a TTL of at most 10 s. */
export const LEGACY_TTL = 10;

const AUTHORITATIVE_ANSWER = 1 << 10;

/** What we advertise. `instance` is one DNS label; the host name is `<instance>.local`. */
export interface Service {
  readonly instance: string;
  readonly host: string;
  readonly port: number;
  /** `key=value` strings, at most 255 bytes each. */
  readonly txt: readonly string[];
}

export interface ServiceInput {
  readonly instance: string;
  readonly port: number;
  readonly path: string;
  readonly version: string;
  readonly description: string;
}

export type MdnsRecord =
  | { name: string; type: 'PTR'; class: 'IN'; ttl: number; flush?: boolean; data: string }
  | { name: string; type: 'SRV'; class: 'IN'; ttl: number; flush?: boolean; data: { priority: number; weight: number; port: number; target: string } }
  | { name: string; type: 'TXT'; class: 'IN'; ttl: number; flush?: boolean; data: string[] }
  | { name: string; type: 'A'; class: 'IN'; ttl: number; flush?: boolean; data: string };

/** A question as dns-packet decodes it. */
export interface ReceivedQuestion {
  readonly name: string;
  readonly type: string;
  readonly class?: string | undefined;
}

/** A resource record as dns-packet decodes it; only the fields read here. */
export interface ReceivedRecord {
  readonly name: string;
  readonly type: string;
  readonly ttl?: number | undefined;
  readonly data?: unknown;
}

export interface Query {
  readonly id?: number | undefined;
  readonly questions?: readonly ReceivedQuestion[] | undefined;
  /** Known answers (RFC 6762 §7.1): records the asker already holds. */
  readonly answers?: readonly ReceivedRecord[] | undefined;
}

export interface Response {
  type: 'response';
  id: number;
  flags: number;
  questions: Array<{ name: string; type: 'PTR' | 'SRV' | 'TXT' | 'A' | 'ANY'; class: 'IN' | 'ANY' }>;
  answers: MdnsRecord[];
  additionals: MdnsRecord[];
}

export interface Reply {
  readonly packet: Response;
  /**
   * The answer holds a shared record (PTR) that other responders may answer too: RFC 6762 §6
   * wants a multicast reply delayed by 20–120 ms then. Unique records go out at once.
   */
  readonly shared: boolean;
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** `dispatch-` and four hex digits from two random bytes. */
export function instanceFromBytes(bytes: Uint8Array): string {
  const hex = Array.from(bytes.subarray(0, 2), (b) => b.toString(16).padStart(2, '0')).join('');
  return `dispatch-${hex.padStart(4, '0')}`;
}

export function makeService(input: ServiceInput): Service {
  if (!LABEL.test(input.instance)) throw new TypeError(`mDNS instance "${input.instance}" is not one DNS label of letters, digits and hyphens`);
  if (!Number.isInteger(input.port) || input.port < 1 || input.port > 65535) throw new RangeError(`mDNS port ${input.port} is out of range`);
  return {
    instance: input.instance,
    host: `${input.instance}.local`,
    port: input.port,
    txt: [txtEntry('description', input.description), txtEntry('version', input.version), txtEntry('path', input.path)],
  };
}

export function instanceName(service: Service): string {
  return `${service.instance}.${SERVICE_TYPE}`;
}

/** A TXT string holds at most 255 bytes (RFC 6763 §6.1): cut long values on a character boundary. */
function txtEntry(key: string, value: string): string {
  let entry = `${key}=${value}`;
  while (Buffer.byteLength(entry) > 255) entry = entry.slice(0, -1);
  // A cut through a surrogate pair would leave half a character.
  if (/[\uD800-\uDBFF]$/.test(entry)) entry = entry.slice(0, -1);
  return entry;
}

export interface RecordSet {
  readonly ptr: MdnsRecord;
  readonly srv: MdnsRecord;
  readonly txt: MdnsRecord;
  readonly a: readonly MdnsRecord[];
  /** `_services._dns-sd._udp.local` → `_dispatch._tcp.local`. */
  readonly meta: MdnsRecord;
}

/**
 * Every record for one interface. `ttl` 'live' is the normal multicast form (unique records
 * carry the cache-flush bit), 'legacy' the unicast reply form (TTL ≤ 10 s, never cache-flush),
 * 'goodbye' TTL 0.
 */
export function recordSet(service: Service, addresses: readonly string[], mode: 'live' | 'legacy' | 'goodbye' = 'live'): RecordSet {
  const ttl = (normal: number) => (mode === 'goodbye' ? 0 : mode === 'legacy' ? Math.min(normal, LEGACY_TTL) : normal);
  // Cache-flush (RFC 6762 §10.2) only on our unique records in multicast; a legacy resolver would choke on it.
  const flush = mode === 'live';
  const name = instanceName(service);
  return {
    ptr: { name: SERVICE_TYPE, type: 'PTR', class: 'IN', ttl: ttl(OTHER_TTL), data: name },
    srv: { name, type: 'SRV', class: 'IN', ttl: ttl(HOST_TTL), flush, data: { priority: 0, weight: 0, port: service.port, target: service.host } },
    txt: { name, type: 'TXT', class: 'IN', ttl: ttl(OTHER_TTL), flush, data: [...service.txt] },
    a: addresses.map((address) => ({ name: service.host, type: 'A', class: 'IN', ttl: ttl(HOST_TTL), flush, data: address })),
    meta: { name: SERVICES_META, type: 'PTR', class: 'IN', ttl: ttl(OTHER_TTL), data: SERVICE_TYPE },
  };
}

/** The unsolicited response sent at start (RFC 6762 §8.3), for one interface's addresses. */
export function announcement(service: Service, addresses: readonly string[]): Response {
  const set = recordSet(service, addresses, 'live');
  return response(0, [], [set.ptr, set.srv, set.txt, ...set.a], []);
}

/** The same records with TTL 0 (RFC 6762 §10.1): caches drop them within a second. */
export function goodbye(service: Service, addresses: readonly string[]): Response {
  const set = recordSet(service, addresses, 'goodbye');
  return response(0, [], [set.ptr, set.srv, set.txt, ...set.a], []);
}

/**
 * What to answer to `query` on an interface whose addresses are `addresses`, or undefined when
 * none of its questions is ours. `legacy`: the query came from a port other than 5353, so the
 * reply goes back by unicast with the query's id and questions (RFC 6762 §6.7).
 */
export function answer(query: Query, service: Service, addresses: readonly string[], options: { readonly legacy: boolean }): Reply | undefined {
  const set = recordSet(service, addresses, options.legacy ? 'legacy' : 'live');
  const own = instanceName(service).toLowerCase();
  const host = service.host.toLowerCase();
  const answers: MdnsRecord[] = [];
  const additionals: MdnsRecord[] = [];
  const echoed: Response['questions'] = [];
  for (const question of query.questions ?? []) {
    const cls = questionClass(question.class);
    if (cls === undefined) continue;
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const type = question.type.toUpperCase();
    const wants = (t: string) => type === t || type === 'ANY';
    let matched = false;
    if (name === SERVICE_TYPE && wants('PTR')) {
      // RFC 6763 §12.1: a PTR answer brings SRV, TXT and the addresses along.
      answers.push(set.ptr);
      additionals.push(set.srv, set.txt, ...set.a);
      matched = true;
    }
    if (name === SERVICES_META && wants('PTR')) {
      answers.push(set.meta);
      matched = true;
    }
    if (name === own && wants('SRV')) {
      answers.push(set.srv);
      additionals.push(...set.a);
      matched = true;
    }
    if (name === own && wants('TXT')) {
      answers.push(set.txt);
      matched = true;
    }
    if (name === host && wants('A')) {
      answers.push(...set.a);
      matched = true;
    }
    if (matched && (type === 'PTR' || type === 'SRV' || type === 'TXT' || type === 'A' || type === 'ANY')) {
      echoed.push({ name: question.name, type, class: cls });
    }
  }
  const known = query.answers ?? [];
  // Known-answer suppression (RFC 6762 §7.1): skip what the asker holds with at least half our TTL.
  const fresh = unique(answers).filter((r) => options.legacy || !known.some((k) => sameRecord(k, r) && (k.ttl ?? 0) >= r.ttl / 2));
  if (fresh.length === 0) return undefined;
  const extra = unique(additionals).filter((r) => !fresh.some((a) => sameRecord(a, r)));
  const shared = fresh.some((r) => r.type === 'PTR');
  if (options.legacy) return { packet: response(query.id ?? 0, echoed, fresh, extra), shared };
  return { packet: response(0, [], fresh, extra), shared };
}

/**
 * Whether someone else claims our names: a live SRV for our instance that points elsewhere, or
 * an A record for our host name with an address that is not ours. Our own packets loop back
 * (multicast loopback, and every socket on port 5353 hears every interface), so a record that
 * matches what we send, on any of our addresses, is no conflict.
 */
export function conflict(records: readonly ReceivedRecord[], service: Service, ownAddresses: readonly string[]): string | undefined {
  const own = instanceName(service).toLowerCase();
  const host = service.host.toLowerCase();
  for (const record of records) {
    if (record.ttl === 0) continue;
    const name = record.name.toLowerCase();
    if (name === own && record.type === 'SRV') {
      const srv = srvData(record.data);
      if (srv && (srv.port !== service.port || srv.target.toLowerCase() !== host)) return `${instanceName(service)} is also ${srv.target}:${srv.port}`;
    }
    if (name === host && record.type === 'A' && typeof record.data === 'string' && !ownAddresses.includes(record.data)) {
      return `${service.host} is also ${record.data}`;
    }
  }
  return undefined;
}

/** The classes we answer: IN and ANY, with or without the unicast-response bit. */
function questionClass(cls: string | undefined): 'IN' | 'ANY' | undefined {
  // dns-packet decodes a class with the QU bit (0x8000) as "UNKNOWN_32769" / "UNKNOWN_33023".
  switch ((cls ?? 'IN').toUpperCase()) {
    case 'IN':
    case 'UNKNOWN_32769':
      return 'IN';
    case 'ANY':
    case 'UNKNOWN_33023':
      return 'ANY';
    default:
      return undefined;
  }
}

function response(id: number, questions: Response['questions'], answers: MdnsRecord[], additionals: MdnsRecord[]): Response {
  return { type: 'response', id, flags: AUTHORITATIVE_ANSWER, questions, answers, additionals };
}

function unique(records: readonly MdnsRecord[]): MdnsRecord[] {
  const out: MdnsRecord[] = [];
  for (const r of records) if (!out.some((o) => sameRecord(o, r))) out.push(r);
  return out;
}

/** Same name (case-insensitively), type and data. */
export function sameRecord(a: ReceivedRecord, b: ReceivedRecord): boolean {
  return a.name.toLowerCase() === b.name.toLowerCase() && a.type === b.type && dataKey(a) === dataKey(b);
}

function dataKey(record: ReceivedRecord): string {
  switch (record.type) {
    case 'PTR':
      return typeof record.data === 'string' ? record.data.toLowerCase() : '';
    case 'A':
      return typeof record.data === 'string' ? record.data : '';
    case 'SRV': {
      const srv = srvData(record.data);
      return srv ? `${srv.target.toLowerCase()}:${srv.port}` : '';
    }
    case 'TXT':
      return txtStrings(record.data).join('\u0000');
    default:
      return JSON.stringify(record.data ?? null);
  }
}

function srvData(data: unknown): { port: number; target: string } | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { port, target } = data as { port?: unknown; target?: unknown };
  return typeof port === 'number' && typeof target === 'string' ? { port, target } : undefined;
}

/** TXT data as strings: dns-packet decodes it as an array of Buffers, we build strings. */
export function txtStrings(data: unknown): string[] {
  const items = Array.isArray(data) ? (data as unknown[]) : [data];
  const out: string[] = [];
  for (const item of items) {
    if (typeof item === 'string') out.push(item);
    else if (item instanceof Uint8Array) out.push(Buffer.from(item).toString('utf8'));
  }
  return out;
}

/** `key=value` strings to a map: keys case-insensitive, the first one wins (RFC 6763 §6.4). */
export function parseTxt(data: unknown): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of txtStrings(data)) {
    const eq = entry.indexOf('=');
    const key = (eq === -1 ? entry : entry.slice(0, eq)).toLowerCase();
    if (key === '' || out.has(key)) continue;
    out.set(key, eq === -1 ? '' : entry.slice(eq + 1));
  }
  return out;
}
