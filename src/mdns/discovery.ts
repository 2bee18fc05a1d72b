/** What a browse has learnt about `_dispatch._tcp` services, from the records it heard. Pure. */
import { usableAddress } from './interfaces.ts';
import { DEFAULT_PATH, parseTxt, SERVICE_TYPE, type ReceivedRecord } from './records.ts';

/** A dispatch a workload can talk to. `host` is the address in the URL. */
export interface FoundService {
  url: string;
  host: string;
  port: number;
}

export interface FollowUp {
  name: string;
  type: 'SRV' | 'TXT' | 'A';
}

interface Instance {
  readonly name: string;
  srv?: { port: number; target: string };
  /** undefined until a TXT record arrived. */
  path?: string;
}

const SUFFIX = `.${SERVICE_TYPE}`;

export class Sightings {
  readonly #instances = new Map<string, Instance>();
  readonly #hosts = new Map<string, string[]>();

  /** Take in the records of one response; true when something changed. */
  absorb(records: readonly ReceivedRecord[]): boolean {
    let changed = false;
    for (const record of records) {
      const name = record.name.toLowerCase().replace(/\.$/, '');
      const gone = record.ttl === 0;
      if (record.type === 'PTR' && name === SERVICE_TYPE && typeof record.data === 'string') {
        const key = record.data.toLowerCase().replace(/\.$/, '');
        if (!key.endsWith(SUFFIX)) continue;
        if (gone) changed = this.#instances.delete(key) || changed;
        else if (!this.#instances.has(key)) {
          this.#instances.set(key, { name: record.data });
          changed = true;
        }
      } else if (record.type === 'SRV' && name.endsWith(SUFFIX)) {
        const srv = srvOf(record.data);
        if (!srv) continue;
        const instance = gone ? this.#instances.get(name) : this.#instance(name, record.name);
        if (!instance) continue;
        if (gone) {
          if (instance.srv) changed = true;
          delete instance.srv;
        } else if (instance.srv?.port !== srv.port || instance.srv.target.toLowerCase() !== srv.target.toLowerCase()) {
          instance.srv = srv;
          changed = true;
        }
      } else if (record.type === 'TXT' && name.endsWith(SUFFIX) && !gone) {
        const instance = this.#instance(name, record.name);
        const path = normalisePath(parseTxt(record.data).get('path'));
        if (instance.path !== path) {
          instance.path = path;
          changed = true;
        }
      } else if (record.type === 'A' && typeof record.data === 'string') {
        const addresses = this.#hosts.get(name) ?? [];
        const at = addresses.indexOf(record.data);
        if (gone && at !== -1) {
          addresses.splice(at, 1);
          changed = true;
        } else if (!gone && at === -1) {
          addresses.push(record.data);
          this.#hosts.set(name, addresses);
          changed = true;
        }
      }
    }
    return changed;
  }

  /** Questions that would complete what is known: SRV/TXT for bare instances, A for targets. */
  missing(): FollowUp[] {
    const out: FollowUp[] = [];
    for (const instance of this.#instances.values()) {
      if (!instance.srv) out.push({ name: instance.name, type: 'SRV' });
      if (instance.path === undefined) out.push({ name: instance.name, type: 'TXT' });
      if (instance.srv && (this.#hosts.get(hostKey(instance.srv.target))?.length ?? 0) === 0) {
        if (!out.some((q) => q.type === 'A' && hostKey(q.name) === hostKey(instance.srv!.target))) out.push({ name: instance.srv.target, type: 'A' });
      }
    }
    return out;
  }

  /** Every reachable URL, in the order the services were first heard; loopback and link-local skipped. */
  found(): FoundService[] {
    const out: FoundService[] = [];
    for (const instance of this.#instances.values()) {
      if (!instance.srv) continue;
      const path = instance.path ?? DEFAULT_PATH;
      for (const address of this.#hosts.get(hostKey(instance.srv.target)) ?? []) {
        if (!usableAddress(address)) continue;
        const url = `http://${address}:${instance.srv.port}${path}`;
        if (!out.some((f) => f.url === url)) out.push({ url, host: address, port: instance.srv.port });
      }
    }
    return out;
  }

  /** Instance names heard, for logs. */
  names(): string[] {
    return [...this.#instances.values()].map((i) => i.name);
  }

  #instance(key: string, name: string): Instance {
    let instance = this.#instances.get(key);
    if (!instance) {
      instance = { name };
      this.#instances.set(key, instance);
    }
    return instance;
  }
}

function hostKey(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function normalisePath(path: string | undefined): string {
  if (path === undefined || path.trim() === '') return DEFAULT_PATH;
  return path.startsWith('/') ? path : `/${path}`;
}

function srvOf(data: unknown): { port: number; target: string } | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { port, target } = data as { port?: unknown; target?: unknown };
  return typeof port === 'number' && typeof target === 'string' ? { port, target } : undefined;
}
