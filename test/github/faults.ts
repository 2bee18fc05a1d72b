/**
 * Fault injection: rules that take over the next N requests matching a method
 * and path, tried in the order they were added; the first live match wins.
 */

export type ServerName = 'api' | 'bytes' | 'web';

export interface RequestMatch {
  /** Default: any method. */
  readonly method?: string;
  /**
   * API paths are matched without the GHES prefix and with `/repositories/{id}`
   * spelled `/repos/{owner}/{name}`, query excluded: `'/repos/o/r/issues'`.
   * `*` stands for one path segment, `**` for anything. A RegExp is tried on
   * path + query. Default: any path.
   */
  readonly path?: string | RegExp;
  /** Default: 'api'. */
  readonly server?: ServerName;
  /** How many requests the rule takes (default 1; `Infinity` for all). */
  readonly times?: number;
  /**
   * Take each matching request only with this probability (default 1): a
   * GitHub that fails some of the time. A request passed over goes on to the
   * next rule, then to GitHub.
   */
  readonly chance?: number;
  /** Where the chance comes from, in [0, 1): give a seeded one for a run that repeats (default Math.random). */
  readonly random?: () => number;
}

export type FaultAction =
  | { readonly kind: 'status'; readonly status: number; readonly body?: unknown; readonly headers?: Readonly<Record<string, string>> }
  | { readonly kind: 'rate-limit'; readonly status: 403 | 429; readonly resetIn: number }
  | { readonly kind: 'secondary-rate-limit'; readonly status: 403 | 429; readonly retryAfter: number | null }
  | { readonly kind: 'drop'; readonly when: 'before' | 'after' }
  | { readonly kind: 'hold'; readonly when: 'before' | 'after' }
  | { readonly kind: 'delay'; readonly when: 'before' | 'after'; readonly ms: number };

/** A live rule; tests await `reached` to act at the moment a request hits it. */
export interface Fault {
  /** Requests the rule has taken so far. */
  readonly hits: number;
  /** Requests it will still take. */
  readonly remaining: number;
  /** Resolves with the first request it takes, once that request is where the rule acts (for a hold 'after': GitHub has acted). */
  readonly reached: Promise<RequestSeen>;
  /** Stop taking requests. */
  cancel(): void;
}

/** A hold keeps each request it takes waiting until `release()` (or the fake closes). */
export interface Hold extends Fault {
  release(): void;
  readonly released: boolean;
}

/** The part of a logged request a fault sees. */
export interface RequestSeen {
  readonly seq: number;
  readonly server: ServerName;
  readonly method: string;
  readonly url: string;
  readonly path: string;
}

export class Rule implements Hold {
  hits = 0;
  remaining: number;
  released = false;
  readonly reached: Promise<RequestSeen>;
  readonly gate: Promise<void>;
  #reach!: (r: RequestSeen) => void;
  #open!: () => void;

  constructor(
    readonly match: RequestMatch,
    readonly action: FaultAction,
  ) {
    this.remaining = match.times ?? 1;
    this.reached = new Promise((resolve) => (this.#reach = resolve));
    this.gate = new Promise((resolve) => (this.#open = resolve));
  }

  matches(server: ServerName, method: string, path: string, pathAndQuery: string): boolean {
    if (this.remaining <= 0) return false;
    if ((this.match.server ?? 'api') !== server) return false;
    if (this.match.method && this.match.method.toUpperCase() !== method.toUpperCase()) return false;
    const p = this.match.path;
    const matched = p === undefined || (p instanceof RegExp ? p.test(pathAndQuery) : globToRegExp(p).test(path));
    if (!matched) return false;
    return this.match.chance === undefined || (this.match.random ?? Math.random)() < this.match.chance;
  }

  take(): void {
    this.hits += 1;
    this.remaining -= 1;
  }

  /** A request taken by the rule is at the point where the rule acts. */
  arrive(seen: RequestSeen): void {
    this.#reach(seen);
  }

  cancel(): void {
    this.remaining = 0;
  }

  release(): void {
    this.released = true;
    this.#open();
  }
}

function globToRegExp(glob: string): RegExp {
  const source = glob
    .split(/(\*\*|\*)/)
    .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}
