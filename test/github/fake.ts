import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { blobError, serveAsset, signedUrl, verifySigned } from './bytes.ts';
import type { Fault, FaultAction, Hold, RequestMatch, ServerName } from './faults.ts';
import { Rule } from './faults.ts';
import * as json from './json.ts';
import type { Urls } from './json.ts';
import type {
  AssetOptions,
  Delivery,
  FakeAsset,
  FakeComment,
  FakeIssue,
  FakeMilestone,
  FakeRelease,
  FakeRepo,
  FakeToken,
  IssueOptions,
  MilestoneOptions,
  ReleaseOptions,
  RepoOptions,
  TokenOptions,
} from './state.ts';
import { GitHubState, atLeast } from './state.ts';

/**
 * A local GitHub for tests: the REST endpoints dispatch uses, answered the way
 * api.github.com answers them (shapes, headers, pagination, validation errors,
 * rate limits), plus a second server on another port playing the blob store
 * that asset downloads are redirected to. Loopback only, port 0.
 */

export interface FakeGitHubOptions {
  /** API path prefix: '/api/v3' makes it look like GitHub Enterprise Server. */
  readonly prefix?: string;
  /** Clock (ms) for timestamps, signed-URL expiry and rate-limit windows. */
  readonly now?: () => number;
  /** Default delivery of asset bytes (each asset may override it). */
  readonly delivery?: Partial<Delivery>;
  /** Primary rate limit per hour: 5,000 for a token, 60 without (GitHub's figures). */
  readonly rateLimit?: { readonly limit?: number; readonly anonymousLimit?: number };
  /** URLs in Link headers: GitHub's own `/repositories/{id}/…` (default), or `/repos/{owner}/{name}/…`. */
  readonly linkPaths?: 'repositories' | 'repos';
}

export interface LoggedRequest {
  readonly seq: number;
  /** 'api' (the REST API), 'web' (browser_download_url on the API's origin), 'bytes' (the blob store). */
  readonly server: ServerName;
  readonly method: string;
  /** Path and query as received. */
  readonly url: string;
  /** For the API: without the prefix, `/repositories/{id}` spelled `/repos/{owner}/{name}`, no query. */
  readonly path: string;
  /** The Host header. */
  readonly host: string | undefined;
  /** The local port the request arrived on (which server). */
  readonly port: number;
  readonly headers: http.IncomingHttpHeaders;
  /** Whether an Authorization header came with it. */
  readonly authorization: boolean;
  /** Parsed JSON request body (undefined when none or not JSON). */
  readonly body: unknown;
  readonly at: number;
  /** Status answered; null while pending or when the connection was dropped before an answer. */
  status: number | null;
  /** 'cut': the body was broken off on purpose; 'aborted': the client went away mid-body. */
  outcome: 'pending' | 'answered' | 'dropped' | 'cut' | 'aborted';
  requestId: string | null;
  /** The fault that took this request, if any. */
  fault: FaultAction['kind'] | null;
}

export interface FailOptions extends RequestMatch {
  readonly status: number;
  /** Default: GitHub's JSON error body for the status (XML on the bytes host). An object is sent as JSON, a string verbatim. */
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RateLimitOptions extends RequestMatch {
  /** 403 (default) or 429: GitHub uses both. */
  readonly status?: 403 | 429;
  /** Seconds until `x-ratelimit-reset` (default 1). */
  readonly resetIn?: number;
}

export interface SecondaryRateLimitOptions extends RequestMatch {
  readonly status?: 403 | 429;
  /** `retry-after` in seconds (default 1); null sends none (then clients should wait a minute). */
  readonly retryAfter?: number | null;
}

export interface DropOptions extends RequestMatch {
  /** 'after' (default): GitHub acts (the issue exists) but the answer never comes. 'before': nothing happens. */
  readonly when?: 'before' | 'after';
}

export interface HoldOptions extends RequestMatch {
  /** 'before' (default): hold before acting. 'after': act, then hold the answer. */
  readonly when?: 'before' | 'after';
}

export interface DelayOptions extends HoldOptions {
  readonly ms: number;
}

type RepoRef = string | FakeRepo;

export interface FakeGitHub {
  /** Like `https://api.github.com`: `http://127.0.0.1:PORT[/api/v3]`. */
  readonly apiUrl: string;
  /** Like `https://github.com` (html_url, browser_download_url): the API's origin. */
  readonly webUrl: string;
  /** Origin of the blob store that asset downloads redirect to (another port: another origin). */
  readonly bytesUrl: string;
  readonly state: GitHubState;
  /** Every request to either server, in arrival order. */
  readonly requests: LoggedRequest[];
  /** Default delivery of asset bytes; mutable. */
  readonly delivery: Delivery;
  /** Exceptions thrown while handling a request (a bug in the fake, or a client that vanished mid-body); tests may assert it stays empty. */
  readonly errors: unknown[];

  addRepo(options: RepoOptions): FakeRepo;
  addToken(options: TokenOptions): FakeToken;
  addCollaborator(repo: RepoRef, login: string): void;
  addLabel(repo: RepoRef, name: string, color?: string): void;
  addRelease(repo: RepoRef, options: ReleaseOptions): FakeRelease;
  addAsset(release: FakeRelease, options: AssetOptions): FakeAsset;
  addMilestone(repo: RepoRef, options: MilestoneOptions): FakeMilestone;
  /** Seed an issue (no validation, no request). */
  addIssue(repo: RepoRef, options: IssueOptions): FakeIssue;
  repo(fullName: string): FakeRepo;
  /** Issues (and pull requests) of a repository, by number. */
  issues(repo: RepoRef): FakeIssue[];
  issue(repo: RepoRef, number: number): FakeIssue | undefined;
  comments(repo: RepoRef, number: number): FakeComment[];
  requestsTo(server: ServerName): LoggedRequest[];
  /** A signed URL for an asset, as the API would redirect to now. */
  signedUrlFor(asset: FakeAsset): string;

  /** Answer the next matching requests with a status (GitHub-like body by default). */
  failNext(options: FailOptions): Fault;
  /** Primary rate limit: 403/429, `x-ratelimit-remaining: 0`, `x-ratelimit-reset` = now + resetIn. */
  rateLimitNext(options?: RateLimitOptions): Fault;
  /** Secondary rate limit: 403/429 with "You have exceeded a secondary rate limit", with or without retry-after. */
  secondaryRateLimitNext(options?: SecondaryRateLimitOptions): Fault;
  /** Drop the connection instead of answering (by default after acting on the request). */
  dropNext(options?: DropOptions): Fault;
  /** Keep matching requests waiting until the test calls `release()`. */
  holdNext(options?: HoldOptions): Hold;
  delayNext(options: DelayOptions): Fault;

  close(): Promise<void>;
}

const DOCS = 'https://docs.github.com/rest';
const DOC = {
  user: `${DOCS}/users/users#get-the-authenticated-user`,
  repo: `${DOCS}/repos/repos#get-a-repository`,
  releaseByTag: `${DOCS}/releases/releases#get-a-release-by-tag-name`,
  asset: `${DOCS}/releases/assets#get-a-release-asset`,
  milestones: `${DOCS}/issues/milestones#list-milestones`,
  listIssues: `${DOCS}/issues/issues#list-repository-issues`,
  getIssue: `${DOCS}/issues/issues#get-an-issue`,
  createIssue: `${DOCS}/issues/issues#create-an-issue`,
  listComments: `${DOCS}/issues/comments#list-issue-comments`,
  createComment: `${DOCS}/issues/comments#create-an-issue-comment`,
  rateLimit: `${DOCS}/overview/rate-limits-for-the-rest-api`,
  secondary: `https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits`,
  issuesDisabled: 'https://docs.github.com/v3/issues/',
} as const;

/** GitHub's body limit for issues and comments, and its title limit. */
export const BODY_LIMIT = 65_536;
export const TITLE_LIMIT = 256;

const DEFAULT_DELIVERY: Delivery = { mode: 'redirect', extraRedirects: 0, ttlSeconds: 300, bytesPerTick: null, tickMs: 10, cutAfter: null };

/** An answer from a route: JSON, raw text, or an asset's bytes. */
interface Reply {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly json?: unknown;
  readonly text?: string;
  readonly asset?: { readonly asset: FakeAsset; readonly delivery: Delivery };
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(String(body.message));
  }
}

/** GitHub's error body: message, optional errors, documentation_url, status as a string. */
function errorBody(status: number, message: string, doc: string, errors?: readonly Record<string, unknown>[]): Record<string, unknown> {
  return { message, ...(errors ? { errors } : {}), documentation_url: doc, status: String(status) };
}

function apiError(status: number, message: string, doc: string, errors?: readonly Record<string, unknown>[]): ApiError {
  return new ApiError(status, errorBody(status, message, doc, errors));
}

const notFound = (doc: string): ApiError => apiError(404, 'Not Found', doc);

/** GitHub counts characters, not UTF-16 units or bytes. */
function chars(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

type Auth = { readonly kind: 'none' } | { readonly kind: 'bad' } | { readonly kind: 'token'; readonly token: FakeToken };

interface Context {
  readonly req: http.IncomingMessage;
  readonly url: URL;
  readonly path: string;
  readonly auth: Auth;
  readonly token: FakeToken | null;
  readonly body: unknown;
  readonly bodyError: boolean;
  readonly params: readonly string[];
  readonly ip: string;
}

type Handler = (ctx: Context) => Reply | Promise<Reply>;

interface Bucket {
  limit: number;
  used: number;
  reset: number;
}

class FakeGitHubServer implements FakeGitHub {
  apiUrl = '';
  webUrl = '';
  bytesUrl = '';
  readonly state: GitHubState;
  readonly requests: LoggedRequest[] = [];
  readonly errors: unknown[] = [];
  readonly delivery: Delivery;
  readonly #now: () => number;
  readonly #prefix: string;
  readonly #linkPaths: 'repositories' | 'repos';
  readonly #limits: { readonly limit: number; readonly anonymous: number };
  readonly #secret = randomBytes(32);
  readonly #rules: Rule[] = [];
  readonly #buckets = new Map<string, Bucket>();
  readonly #api: http.Server;
  readonly #bytes: http.Server;
  readonly #routes: readonly (readonly [string, RegExp, Handler])[];
  #seq = 0;
  #closed = false;

  constructor(options: FakeGitHubOptions) {
    this.#now = options.now ?? Date.now;
    this.#prefix = (options.prefix ?? '').replace(/\/+$/, '');
    this.#linkPaths = options.linkPaths ?? 'repositories';
    this.#limits = { limit: options.rateLimit?.limit ?? 5000, anonymous: options.rateLimit?.anonymousLimit ?? 60 };
    this.delivery = { ...DEFAULT_DELIVERY, ...options.delivery };
    this.state = new GitHubState(this.#now);
    this.#api = http.createServer((req, res) => void this.#onApi(req, res).catch((err: unknown) => this.#broke(res, err)));
    this.#bytes = http.createServer((req, res) => void this.#onBytes(req, res).catch((err: unknown) => this.#broke(res, err)));
    const repo = '/repos/([^/]+)/([^/]+)';
    this.#routes = [
      ['GET', /^\/user$/, (c) => this.#getUser(c)],
      ['GET', /^\/rate_limit$/, (c) => this.#getRateLimit(c)],
      ['GET', new RegExp(`^${repo}$`), (c) => this.#getRepo(c)],
      ['GET', new RegExp(`^${repo}/releases/tags/(.+)$`), (c) => this.#getReleaseByTag(c)],
      ['GET', new RegExp(`^${repo}/releases/assets/(\\d+)$`), (c) => this.#getAsset(c)],
      ['GET', new RegExp(`^${repo}/milestones$`), (c) => this.#listMilestones(c)],
      ['GET', new RegExp(`^${repo}/issues$`), (c) => this.#listIssues(c)],
      ['POST', new RegExp(`^${repo}/issues$`), (c) => this.#createIssue(c)],
      ['GET', new RegExp(`^${repo}/issues/(\\d+)$`), (c) => this.#getIssue(c)],
      ['GET', new RegExp(`^${repo}/issues/(\\d+)/comments$`), (c) => this.#listComments(c)],
      ['POST', new RegExp(`^${repo}/issues/(\\d+)/comments$`), (c) => this.#createComment(c)],
    ];
  }

  async listen(): Promise<void> {
    const listen = (server: http.Server): Promise<number> =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
      });
    const apiPort = await listen(this.#api);
    const bytesPort = await listen(this.#bytes);
    this.webUrl = `http://127.0.0.1:${apiPort}`;
    this.apiUrl = `${this.webUrl}${this.#prefix}`;
    this.bytesUrl = `http://127.0.0.1:${bytesPort}`;
  }

  get #urls(): Urls {
    return { api: this.apiUrl, web: this.webUrl };
  }

  // ---- set-up and read-back -------------------------------------------------

  #repo(ref: RepoRef): FakeRepo {
    return typeof ref === 'string' ? this.state.repo(ref) : ref;
  }

  addRepo(options: RepoOptions): FakeRepo {
    return this.state.addRepo(options);
  }

  addToken(options: TokenOptions): FakeToken {
    return this.state.addToken(options);
  }

  addCollaborator(repo: RepoRef, login: string): void {
    this.state.user(login);
    this.#repo(repo).collaborators.add(login);
  }

  addLabel(repo: RepoRef, name: string, color?: string): void {
    this.state.addLabel(this.#repo(repo), { name, ...(color ? { color } : {}) });
  }

  addRelease(repo: RepoRef, options: ReleaseOptions): FakeRelease {
    return this.state.addRelease(this.#repo(repo), options);
  }

  addAsset(release: FakeRelease, options: AssetOptions): FakeAsset {
    return this.state.addAsset(release, options);
  }

  addMilestone(repo: RepoRef, options: MilestoneOptions): FakeMilestone {
    return this.state.addMilestone(this.#repo(repo), options);
  }

  addIssue(repo: RepoRef, options: IssueOptions): FakeIssue {
    return this.state.addIssue(this.#repo(repo), options);
  }

  repo(fullName: string): FakeRepo {
    return this.state.repo(fullName);
  }

  issues(repo: RepoRef): FakeIssue[] {
    return [...this.#repo(repo).issues].sort((a, b) => a.number - b.number);
  }

  issue(repo: RepoRef, number: number): FakeIssue | undefined {
    return this.#repo(repo).issues.find((i) => i.number === number);
  }

  comments(repo: RepoRef, number: number): FakeComment[] {
    return [...(this.issue(repo, number)?.comments ?? [])];
  }

  requestsTo(server: ServerName): LoggedRequest[] {
    return this.requests.filter((r) => r.server === server);
  }

  signedUrlFor(asset: FakeAsset): string {
    const repo = this.state.repos.find((r) => r.releases.some((rel) => rel.assets.includes(asset)));
    if (!repo) throw new Error(`fake GitHub: asset ${asset.id} belongs to no repository`);
    return this.#signed(repo, asset, this.#deliveryOf(asset));
  }

  // ---- faults ---------------------------------------------------------------

  #rule(match: RequestMatch, action: FaultAction): Rule {
    const rule = new Rule(match, action);
    this.#rules.push(rule);
    return rule;
  }

  failNext(options: FailOptions): Fault {
    return this.#rule(options, { kind: 'status', status: options.status, body: options.body, ...(options.headers ? { headers: options.headers } : {}) });
  }

  rateLimitNext(options: RateLimitOptions = {}): Fault {
    return this.#rule(options, { kind: 'rate-limit', status: options.status ?? 403, resetIn: options.resetIn ?? 1 });
  }

  secondaryRateLimitNext(options: SecondaryRateLimitOptions = {}): Fault {
    return this.#rule(options, { kind: 'secondary-rate-limit', status: options.status ?? 403, retryAfter: options.retryAfter === undefined ? 1 : options.retryAfter });
  }

  dropNext(options: DropOptions = {}): Fault {
    return this.#rule(options, { kind: 'drop', when: options.when ?? 'after' });
  }

  holdNext(options: HoldOptions = {}): Hold {
    return this.#rule(options, { kind: 'hold', when: options.when ?? 'before' });
  }

  delayNext(options: DelayOptions): Fault {
    return this.#rule(options, { kind: 'delay', when: options.when ?? 'before', ms: options.ms });
  }

  /** Where a rule acts: 'before' or 'after' GitHub handles the request. */
  static #phase(rule: Rule): 'before' | 'after' {
    return 'when' in rule.action ? rule.action.when : 'before';
  }

  /**
   * Reach a phase: tell a waiting test, then wait out a hold or delay. False
   * when the fake closed meanwhile: the request then dies without acting.
   */
  async #pause(rule: Rule | undefined, req: http.IncomingMessage, entry: LoggedRequest, phase: 'before' | 'after'): Promise<boolean> {
    if (!rule || FakeGitHubServer.#phase(rule) !== phase) return true;
    rule.arrive({ seq: entry.seq, server: entry.server, method: entry.method, url: entry.url, path: entry.path });
    const a = rule.action;
    if (a.kind === 'hold') await rule.gate;
    if (a.kind === 'delay') await sleep(a.ms);
    if (!this.#closed) return true;
    this.#drop(req, entry);
    return false;
  }

  #takeRule(entry: LoggedRequest): Rule | undefined {
    const rule = this.#rules.find((r) => r.matches(entry.server, entry.method, entry.path, entry.url));
    if (rule) {
      rule.take();
      entry.fault = rule.action.kind;
    }
    return rule;
  }

  // ---- the API server -------------------------------------------------------

  #entry(server: ServerName, req: http.IncomingMessage, path: string, body: unknown): LoggedRequest {
    this.#seq += 1;
    const entry: LoggedRequest = {
      seq: this.#seq,
      server,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      path,
      host: req.headers.host,
      port: req.socket.localPort ?? 0,
      headers: { ...req.headers },
      authorization: req.headers.authorization !== undefined,
      body,
      at: this.#now(),
      status: null,
      outcome: 'pending',
      requestId: null,
      fault: null,
    };
    this.requests.push(entry);
    return entry;
  }

  #requestId(): string {
    const hex = (n: number): string => randomBytes(n).toString('hex').toUpperCase();
    return `${hex(2)}:${hex(3)}:${hex(3)}:${hex(4)}:${hex(4)}`;
  }

  /** The API path (prefix stripped, `/repositories/{id}` resolved), or null when the request is for the web side. */
  #apiPath(pathname: string): string | null {
    let path: string;
    if (this.#prefix) {
      if (pathname !== this.#prefix && !pathname.startsWith(`${this.#prefix}/`)) return null;
      path = pathname.slice(this.#prefix.length) || '/';
    } else {
      if (/^\/[^/]+\/[^/]+\/releases\/download\/[^/]+\/[^/]+$/.test(pathname) && !/^\/(repos|repositories|users?|rate_limit)\//.test(pathname)) return null;
      path = pathname;
    }
    const m = /^\/repositories\/(\d+)(\/.*)?$/.exec(path);
    if (m) {
      const repo = this.state.repos.find((r) => r.id === Number(m[1]));
      if (repo) return `/repos/${repo.owner}/${repo.name}${m[2] ?? ''}`;
    }
    return path;
  }

  async #readBody(req: http.IncomingMessage): Promise<{ body: unknown; error: boolean }> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return { body: undefined, error: false };
    try {
      return { body: JSON.parse(text) as unknown, error: false };
    } catch {
      return { body: text, error: true };
    }
  }

  #parseAuth(header: string | undefined): Auth {
    if (header === undefined) return { kind: 'none' };
    const m = /^(?:token|bearer)\s+(\S+)\s*$/i.exec(header);
    const token = m?.[1] ? this.state.tokens.get(m[1]) : undefined;
    return token ? { kind: 'token', token } : { kind: 'bad' };
  }

  /**
   * Count a request against its identity's hourly window. The request that
   * takes the last unit succeeds (remaining 0); the next one is refused.
   */
  #count(auth: Auth, ip: string, consume: boolean): { bucket: Bucket; refused: boolean } {
    const key = auth.kind === 'token' ? `user:${auth.token.login.toLowerCase()}` : `ip:${ip}`;
    const nowSec = Math.floor(this.#now() / 1000);
    let bucket = this.#buckets.get(key);
    if (!bucket || nowSec >= bucket.reset) {
      bucket = { limit: auth.kind === 'token' ? this.#limits.limit : this.#limits.anonymous, used: 0, reset: nowSec + 3600 };
      this.#buckets.set(key, bucket);
    }
    if (!consume) return { bucket, refused: false };
    if (bucket.used >= bucket.limit) return { bucket, refused: true };
    bucket.used += 1;
    return { bucket, refused: false };
  }

  #rateHeaders(bucket: Bucket): Record<string, string> {
    return {
      'x-ratelimit-limit': String(bucket.limit),
      'x-ratelimit-remaining': String(Math.max(0, bucket.limit - bucket.used)),
      'x-ratelimit-reset': String(bucket.reset),
      'x-ratelimit-used': String(bucket.used),
      'x-ratelimit-resource': 'core',
    };
  }

  #primaryLimitBody(auth: Auth, ip: string, requestId: string, doc = DOC.rateLimit): Record<string, unknown> {
    const when = new Date(this.#now()).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
    const support = ` If you reach out to GitHub Support for help, please include the request ID ${requestId} and timestamp ${when} UTC.`;
    const message =
      auth.kind === 'token'
        ? `API rate limit exceeded for user ID ${this.state.user(auth.token.login).id}.${support}`
        : `API rate limit exceeded for ${ip}. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)${support}`;
    return { message, documentation_url: doc, status: '403' };
  }

  async #onApi(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const apiPath = this.#apiPath(url.pathname);
    const { body, error: bodyError } = await this.#readBody(req);
    const entry = this.#entry(apiPath === null ? 'web' : 'api', req, apiPath ?? url.pathname, body);
    res.on('close', () => {
      if (entry.outcome === 'pending') entry.outcome = res.writableFinished ? 'answered' : 'aborted';
    });
    const ip = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
    const rule = this.#takeRule(entry);
    if (!(await this.#pause(rule, req, entry, 'before'))) return;
    if (rule?.action.kind === 'drop' && rule.action.when === 'before') return this.#drop(req, entry);

    if (apiPath === null) return this.#onWeb(req, res, url, entry, rule);

    const requestId = this.#requestId();
    entry.requestId = requestId;
    const auth = this.#parseAuth(req.headers.authorization);
    const isRateLimitPath = apiPath === '/rate_limit';
    const { bucket, refused } = this.#count(auth, ip, !isRateLimitPath);
    const headers: Record<string, string> = {
      'x-github-api-version-selected': '2022-11-28',
      'x-github-media-type': 'github.v3; format=json',
      ...this.#rateHeaders(bucket),
      'x-github-request-id': requestId,
      vary: 'Accept, Authorization, Cookie, X-GitHub-OTP',
      'cache-control': auth.kind === 'token' ? 'private, max-age=60, s-maxage=60' : 'public, max-age=60, s-maxage=60',
    };

    let reply: Reply;
    const a = rule?.action;
    if (a?.kind === 'status') {
      reply = { status: a.status, headers: a.headers ?? {}, ...(typeof a.body === 'string' ? { text: a.body } : { json: a.body ?? this.#serverErrorBody(a.status) }) };
    } else if (a?.kind === 'rate-limit') {
      const reset = Math.floor(this.#now() / 1000) + a.resetIn;
      reply = {
        status: a.status,
        headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset), 'x-ratelimit-used': String(bucket.limit) },
        json: { ...this.#primaryLimitBody(auth, ip, requestId), status: String(a.status) },
      };
    } else if (a?.kind === 'secondary-rate-limit') {
      reply = {
        status: a.status,
        headers: a.retryAfter === null ? {} : { 'retry-after': String(a.retryAfter) },
        json: errorBody(
          a.status,
          `You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID ${requestId}.`,
          DOC.secondary,
        ),
      };
    } else if (auth.kind === 'bad') {
      reply = { status: 401, json: errorBody(401, 'Bad credentials', DOCS) };
    } else if (refused) {
      reply = { status: 403, json: this.#primaryLimitBody(auth, ip, requestId) };
    } else {
      reply = await this.#route(req, url, apiPath, auth, body, bodyError, ip);
    }

    if (!(await this.#pause(rule, req, entry, 'after'))) return;
    if (rule?.action.kind === 'drop' && rule.action.when === 'after') return this.#drop(req, entry);
    await this.#send(req, res, entry, reply, headers, 'json');
  }

  #serverErrorBody(status: number): Record<string, unknown> {
    const messages: Record<number, string> = {
      503: 'Service Unavailable',
      504: "We couldn't respond to your request in time. Sorry about that. Please try resubmitting your request and contact us if the problem persists.",
    };
    const message = messages[status] ?? (status >= 500 ? 'Server Error' : (http.STATUS_CODES[status] ?? 'Error'));
    return errorBody(status, message, DOCS);
  }

  #drop(req: http.IncomingMessage, entry: LoggedRequest): void {
    entry.outcome = 'dropped';
    req.socket.destroy();
  }

  async #send(req: http.IncomingMessage, res: http.ServerResponse, entry: LoggedRequest, reply: Reply, base: Readonly<Record<string, string>>, kind: 'json' | 'xml' | 'text'): Promise<void> {
    if (res.destroyed) {
      entry.outcome = 'aborted';
      return;
    }
    if (reply.asset) {
      const { outcome } = await serveAsset(req, res, reply.asset.asset, reply.asset.delivery, { ...base, ...reply.headers }, (status) => {
        entry.status = status;
      });
      entry.outcome = outcome === 'complete' ? 'answered' : outcome;
      return;
    }
    const contentType = kind === 'json' ? 'application/json; charset=utf-8' : kind === 'xml' ? 'application/xml' : 'text/plain; charset=utf-8';
    const payload = reply.text !== undefined ? Buffer.from(reply.text) : reply.json === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(reply.json));
    res.writeHead(reply.status, {
      'content-type': reply.status >= 300 && reply.status < 400 ? 'text/html;charset=utf-8' : contentType,
      ...base,
      ...reply.headers,
      'content-length': String(payload.length),
    });
    entry.status = reply.status;
    res.end(req.method === 'HEAD' ? undefined : payload);
    entry.outcome = 'answered';
  }

  async #route(req: http.IncomingMessage, url: URL, path: string, auth: Auth, body: unknown, bodyError: boolean, ip: string): Promise<Reply> {
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    for (const [m, pattern, handler] of this.#routes) {
      if (m !== method) continue;
      const match = pattern.exec(path);
      if (!match) continue;
      let params: string[];
      try {
        params = match.slice(1).map((p) => decodeURIComponent(p ?? ''));
      } catch {
        return { status: 404, json: errorBody(404, 'Not Found', DOCS) };
      }
      const ctx: Context = { req, url, path, auth, token: auth.kind === 'token' ? auth.token : null, body, bodyError, params, ip };
      try {
        return await handler(ctx);
      } catch (err) {
        if (err instanceof ApiError) return { status: err.status, headers: err.headers, json: err.body };
        throw err;
      }
    }
    return { status: 404, json: errorBody(404, 'Not Found', DOCS) };
  }

  // ---- routes -----------------------------------------------------------------

  /** The repository, or the 404 GitHub gives for missing and hidden (private) ones alike. */
  #visible(ctx: Context, doc: string): { repo: FakeRepo; permission: NonNullable<ReturnType<GitHubState['permission']>> } {
    const [owner = '', name = ''] = ctx.params;
    const repo = this.state.findRepo(owner, name);
    const permission = repo ? this.state.permission(ctx.token, repo) : null;
    if (!repo || permission === null) throw notFound(doc);
    return { repo, permission };
  }

  #issuesRepo(ctx: Context, doc: string, write: boolean): { repo: FakeRepo; permission: NonNullable<ReturnType<GitHubState['permission']>>; token: FakeToken | null } {
    const { repo, permission } = this.#visible(ctx, doc);
    if (!repo.hasIssues) throw apiError(410, 'Issues are disabled for this repo', DOC.issuesDisabled);
    if (write && !ctx.token) throw apiError(401, 'Requires authentication', doc);
    if (ctx.token && (ctx.token.issues === 'none' || (write && ctx.token.issues !== 'write'))) {
      throw apiError(403, 'Resource not accessible by personal access token', doc);
    }
    return { repo, permission, token: ctx.token };
  }

  #getUser(ctx: Context): Reply {
    if (!ctx.token) throw apiError(401, 'Requires authentication', DOC.user);
    return { status: 200, json: json.privateUser(this.#urls, this.state.user(ctx.token.login)) };
  }

  #getRateLimit(ctx: Context): Reply {
    const { bucket } = this.#count(ctx.auth, ctx.ip, false);
    const core = { limit: bucket.limit, used: bucket.used, remaining: Math.max(0, bucket.limit - bucket.used), reset: bucket.reset };
    return { status: 200, json: { resources: { core }, rate: core } };
  }

  #getRepo(ctx: Context): Reply {
    const { repo, permission } = this.#visible(ctx, DOC.repo);
    return { status: 200, json: json.repository(this.#urls, this.state, repo, permission, ctx.token !== null) };
  }

  #getReleaseByTag(ctx: Context): Reply {
    const { repo } = this.#visible(ctx, DOC.releaseByTag);
    const tag = ctx.params[2];
    // Drafts have no tag yet as far as this endpoint is concerned.
    const release = repo.releases.find((r) => r.tag === tag && !r.draft);
    if (!release) throw notFound(DOC.releaseByTag);
    return { status: 200, json: json.release(this.#urls, this.state, repo, release) };
  }

  #findAsset(repo: FakeRepo, id: number): { release: FakeRelease; asset: FakeAsset } | undefined {
    for (const release of repo.releases) {
      const asset = release.assets.find((a) => a.id === id);
      if (asset) return { release, asset };
    }
    return undefined;
  }

  #deliveryOf(asset: FakeAsset): Delivery {
    return { ...this.delivery, ...asset.delivery };
  }

  #signed(repo: FakeRepo, asset: FakeAsset, delivery: Delivery): string {
    const expires = Math.floor(this.#now() / 1000) + delivery.ttlSeconds;
    return signedUrl(this.bytesUrl, this.#secret, { repoId: repo.id, assetId: asset.id, expires, name: asset.name }, delivery.extraRedirects);
  }

  #getAsset(ctx: Context): Reply {
    const { repo } = this.#visible(ctx, DOC.asset);
    const found = this.#findAsset(repo, Number(ctx.params[2]));
    if (!found) throw notFound(DOC.asset);
    const { release, asset } = found;
    if (!(ctx.req.headers.accept ?? '').toLowerCase().includes('application/octet-stream')) {
      return { status: 200, json: json.asset(this.#urls, this.state, repo, release, asset) };
    }
    asset.downloadCount += 1;
    const delivery = this.#deliveryOf(asset);
    if (delivery.mode === 'direct') return { status: 200, asset: { asset, delivery } };
    return { status: 302, headers: { location: this.#signed(repo, asset, delivery) } };
  }

  #page<T>(ctx: Context, items: readonly T[], repo: FakeRepo, resource: string): { items: T[]; headers: Record<string, string> } {
    const perPageRaw = Number.parseInt(ctx.url.searchParams.get('per_page') ?? '', 10);
    const perPage = Number.isNaN(perPageRaw) || perPageRaw < 1 ? 30 : Math.min(perPageRaw, 100);
    const pageRaw = Number.parseInt(ctx.url.searchParams.get('page') ?? '', 10);
    const page = Number.isNaN(pageRaw) || pageRaw < 1 ? 1 : pageRaw;
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const slice = items.slice((page - 1) * perPage, page * perPage);
    if (last === 1 && page === 1) return { items: slice, headers: {} };
    const base = this.#linkPaths === 'repositories' ? `${this.apiUrl}/repositories/${repo.id}/${resource}` : `${this.apiUrl}/repos/${repo.owner}/${repo.name}/${resource}`;
    const link = (n: number, rel: string): string => {
      const params = new URLSearchParams(ctx.url.searchParams);
      params.delete('page');
      params.append('page', String(n));
      return `<${base}?${params.toString()}>; rel="${rel}"`;
    };
    const links: string[] = [];
    if (page > 1) links.push(link(Math.min(page - 1, last), 'prev'));
    if (page < last) links.push(link(page + 1, 'next'), link(last, 'last'));
    if (page > 1) links.push(link(1, 'first'));
    return { items: slice, headers: { link: links.join(', ') } };
  }

  #listMilestones(ctx: Context): Reply {
    const { repo } = this.#visible(ctx, DOC.milestones);
    const state = ctx.url.searchParams.get('state') ?? 'open';
    const sort = ctx.url.searchParams.get('sort') ?? 'due_on';
    const direction = ctx.url.searchParams.get('direction') ?? 'asc';
    const chosen = repo.milestones.filter((m) => state === 'all' || m.state === state);
    const completeness = (m: FakeMilestone): number => {
      const of = repo.issues.filter((i) => i.milestone === m.number);
      return of.length === 0 ? 0 : of.filter((i) => i.state === 'closed').length / of.length;
    };
    chosen.sort((a, b) => {
      let d: number;
      if (sort === 'completeness') d = completeness(a) - completeness(b);
      else d = (a.dueOn ?? Number.POSITIVE_INFINITY) - (b.dueOn ?? Number.POSITIVE_INFINITY) || 0;
      if (Number.isNaN(d)) d = 0;
      d = d || a.number - b.number;
      return direction === 'desc' ? -d : d;
    });
    const { items, headers } = this.#page(ctx, chosen, repo, 'milestones');
    return { status: 200, headers, json: items.map((m) => json.milestone(this.#urls, this.state, repo, m)) };
  }

  #listIssues(ctx: Context): Reply {
    const { repo } = this.#issuesRepo(ctx, DOC.listIssues, false);
    const q = ctx.url.searchParams;
    const state = q.get('state') ?? 'open';
    const creator = q.get('creator')?.toLowerCase();
    const assignee = q.get('assignee');
    const milestone = q.get('milestone');
    const labels = (q.get('labels') ?? '').split(',').map((l) => l.trim().toLowerCase()).filter(Boolean);
    const sinceRaw = q.get('since');
    let since: number | null = null;
    if (sinceRaw !== null) {
      since = Date.parse(sinceRaw);
      if (Number.isNaN(since)) throw apiError(422, 'Validation Failed', DOC.listIssues, [{ resource: 'Issue', field: 'since', code: 'invalid' }]);
    }
    const sort = q.get('sort') ?? 'created';
    const direction = q.get('direction') ?? 'desc';
    const seconds = (ms: number): number => Math.floor(ms / 1000) * 1000;
    const chosen = repo.issues.filter((i) => {
      if (state !== 'all' && i.state !== state) return false;
      if (creator !== undefined && i.user.toLowerCase() !== creator) return false;
      if (assignee === 'none' && i.assignees.length > 0) return false;
      if (assignee === '*' && i.assignees.length === 0) return false;
      if (assignee && assignee !== 'none' && assignee !== '*' && !i.assignees.some((a) => a.toLowerCase() === assignee.toLowerCase())) return false;
      if (milestone === 'none' && i.milestone !== null) return false;
      if (milestone === '*' && i.milestone === null) return false;
      if (milestone && milestone !== 'none' && milestone !== '*' && String(i.milestone) !== milestone) return false;
      if (!labels.every((l) => i.labels.some((x) => x.toLowerCase() === l))) return false;
      // `since` filters on the last update, not on creation.
      if (since !== null && seconds(i.updatedAt) < seconds(since)) return false;
      return true;
    });
    const key = (i: FakeIssue): number => (sort === 'updated' ? seconds(i.updatedAt) : sort === 'comments' ? i.comments.length : seconds(i.createdAt));
    chosen.sort((a, b) => {
      const d = key(a) - key(b) || a.number - b.number;
      return direction === 'asc' ? d : -d;
    });
    const { items, headers } = this.#page(ctx, chosen, repo, 'issues');
    return { status: 200, headers, json: items.map((i) => json.issue(this.#urls, this.state, repo, i)) };
  }

  #getIssue(ctx: Context): Reply {
    const { repo } = this.#issuesRepo(ctx, DOC.getIssue, false);
    const issue = repo.issues.find((i) => i.number === Number(ctx.params[2]));
    if (!issue) throw notFound(DOC.getIssue);
    return { status: 200, json: json.issue(this.#urls, this.state, repo, issue) };
  }

  #createIssue(ctx: Context): Reply {
    const doc = DOC.createIssue;
    const { repo, permission, token } = this.#issuesRepo(ctx, doc, true);
    const input = this.#object(ctx, doc);
    const title = input.title;
    if (title === undefined) throw apiError(422, 'Invalid request.\n\n"title" wasn\'t supplied.', doc);
    if (typeof title !== 'string' && typeof title !== 'number') throw this.#schema('title', title, 'is not a string or integer', doc);
    const body = input.body;
    if (body !== undefined && body !== null && typeof body !== 'string') throw this.#schema('body', body, 'is not a string or null', doc);
    const labelsIn = input.labels;
    if (labelsIn !== undefined && labelsIn !== null && !Array.isArray(labelsIn)) throw this.#schema('labels', labelsIn, 'is not an array', doc);
    const assigneesIn = input.assignees;
    if (assigneesIn !== undefined && assigneesIn !== null && !Array.isArray(assigneesIn)) throw this.#schema('assignees', assigneesIn, 'is not an array', doc);
    if (Array.isArray(assigneesIn) && assigneesIn.some((a) => typeof a !== 'string')) throw this.#schema('assignees', assigneesIn, 'is not an array of strings', doc);
    const labelNames: string[] = [];
    for (const l of (labelsIn as unknown[] | null | undefined) ?? []) {
      const name = typeof l === 'string' ? l : l && typeof l === 'object' && typeof (l as { name?: unknown }).name === 'string' ? (l as { name: string }).name : undefined;
      if (name === undefined) throw this.#schema('labels', labelsIn, 'is not an array of strings or objects with a name', doc);
      if (name.trim() !== '') labelNames.push(name.trim());
    }
    const assignees = [...((assigneesIn as string[] | null | undefined) ?? [])];
    if (typeof input.assignee === 'string' && !assignees.includes(input.assignee)) assignees.push(input.assignee);
    let milestone = input.milestone ?? null;

    // Without push access GitHub files the issue and quietly ignores these.
    if (!atLeast(permission, 'push')) {
      labelNames.length = 0;
      assignees.length = 0;
      milestone = null;
    }

    const errors: Record<string, unknown>[] = [];
    const titleText = String(title);
    if (titleText.trim() === '') errors.push({ resource: 'Issue', code: 'missing_field', field: 'title' });
    if (chars(titleText) > TITLE_LIMIT) errors.push({ resource: 'Issue', code: 'custom', field: 'title', message: `title is too long (maximum is ${TITLE_LIMIT} characters)` });
    if (typeof body === 'string' && chars(body) > BODY_LIMIT) errors.push({ resource: 'Issue', code: 'custom', field: 'body', message: `body is too long (maximum is ${BODY_LIMIT} characters)` });
    for (const login of assignees) {
      if (!this.state.assignable(repo, login)) errors.push({ value: login, resource: 'Issue', field: 'assignees', code: 'invalid' });
    }
    if (milestone !== null && !(Number.isInteger(milestone) && repo.milestones.some((m) => m.number === milestone))) {
      errors.push({ value: milestone, resource: 'Issue', field: 'milestone', code: 'invalid' });
    }
    if (errors.length > 0) throw apiError(422, 'Validation Failed', doc, errors);

    const now = this.#now();
    const login = token?.login ?? repo.owner;
    const issue = this.state.addIssue(repo, {
      title: titleText,
      body: typeof body === 'string' ? body : null,
      labels: [...new Map(labelNames.map((n) => [n.toLowerCase(), n])).values()],
      assignees: [...new Set(assignees.map((a) => this.state.login(a)))],
      milestone: milestone as number | null,
      user: login,
      createdAt: now,
    });
    const rendered = json.issue(this.#urls, this.state, repo, issue);
    return { status: 201, headers: { location: String(rendered.url) }, json: rendered };
  }

  #listComments(ctx: Context): Reply {
    const { repo } = this.#issuesRepo(ctx, DOC.listComments, false);
    const issue = repo.issues.find((i) => i.number === Number(ctx.params[2]));
    if (!issue) throw notFound(DOC.listComments);
    const sinceRaw = ctx.url.searchParams.get('since');
    const since = sinceRaw === null ? null : Date.parse(sinceRaw);
    const chosen = issue.comments.filter((c) => since === null || Number.isNaN(since) || c.updatedAt >= Math.floor(since / 1000) * 1000);
    const { items, headers } = this.#page(ctx, chosen, repo, `issues/${issue.number}/comments`);
    return { status: 200, headers, json: items.map((c) => json.comment(this.#urls, this.state, repo, issue, c)) };
  }

  #createComment(ctx: Context): Reply {
    const doc = DOC.createComment;
    const { repo, token } = this.#issuesRepo(ctx, doc, true);
    const issue = repo.issues.find((i) => i.number === Number(ctx.params[2]));
    if (!issue) throw notFound(doc);
    const input = this.#object(ctx, doc);
    const body = input.body;
    if (body === undefined) throw apiError(422, 'Invalid request.\n\n"body" wasn\'t supplied.', doc);
    if (typeof body !== 'string') throw this.#schema('body', body, 'is not a string', doc);
    if (body.trim() === '') throw apiError(422, 'Validation Failed', doc, [{ resource: 'IssueComment', code: 'missing_field', field: 'body' }]);
    if (chars(body) > BODY_LIMIT) {
      throw apiError(422, 'Validation Failed', doc, [{ resource: 'IssueComment', code: 'custom', field: 'body', message: `body is too long (maximum is ${BODY_LIMIT} characters)` }]);
    }
    const now = this.#now();
    const user = token?.login ?? repo.owner;
    const comment: FakeComment = { id: this.state.nextId('comment'), body, user, createdAt: now, updatedAt: now };
    issue.comments.push(comment);
    issue.updatedAt = now;
    const rendered = json.comment(this.#urls, this.state, repo, issue, comment);
    return { status: 201, headers: { location: String(rendered.url) }, json: rendered };
  }

  #object(ctx: Context, doc: string): Record<string, unknown> {
    if (ctx.bodyError || ctx.body === undefined || typeof ctx.body !== 'object' || ctx.body === null || Array.isArray(ctx.body)) {
      throw apiError(400, 'Problems parsing JSON', doc);
    }
    return ctx.body as Record<string, unknown>;
  }

  #schema(field: string, value: unknown, problem: string, doc: string): ApiError {
    return apiError(422, `Invalid request.\n\nFor 'properties/${field}', ${JSON.stringify(value)} ${problem}.`, doc);
  }

  // ---- the web side: browser_download_url ------------------------------------

  async #onWeb(req: http.IncomingMessage, res: http.ServerResponse, url: URL, entry: LoggedRequest, rule: Rule | undefined): Promise<void> {
    let reply: Reply = { status: 404, text: 'Not Found' };
    const a = rule?.action;
    if (a?.kind === 'status') reply = { status: a.status, headers: a.headers ?? {}, text: typeof a.body === 'string' ? a.body : (http.STATUS_CODES[a.status] ?? '') };
    else {
      const m = /^\/([^/]+)\/([^/]+)\/releases\/download\/([^/]+)\/([^/]+)$/.exec(url.pathname);
      const repo = m ? this.state.findRepo(decodeURIComponent(m[1] ?? ''), decodeURIComponent(m[2] ?? '')) : undefined;
      // Only public repositories: the web side knows no API token.
      if (m && repo && !repo.private && (req.method === 'GET' || req.method === 'HEAD')) {
        const tag = decodeURIComponent(m[3] ?? '');
        const name = decodeURIComponent(m[4] ?? '');
        const asset = repo.releases.find((r) => r.tag === tag && !r.draft)?.assets.find((x) => x.name === name);
        if (asset) {
          asset.downloadCount += 1;
          reply = { status: 302, headers: { location: this.#signed(repo, asset, this.#deliveryOf(asset)) } };
        }
      }
    }
    if (!(await this.#pause(rule, req, entry, 'after'))) return;
    if (rule?.action.kind === 'drop' && rule.action.when === 'after') return this.#drop(req, entry);
    await this.#send(req, res, entry, reply, {}, 'text');
  }

  // ---- the blob store -------------------------------------------------------

  async #onBytes(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.bytesUrl || 'http://127.0.0.1');
    for await (const _ of req) {
      // A GET has no body; drain whatever came.
    }
    const entry = this.#entry('bytes', req, url.pathname, undefined);
    res.on('close', () => {
      if (entry.outcome === 'pending') entry.outcome = res.writableFinished ? 'answered' : 'aborted';
    });
    const requestId = randomBytes(16).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
    entry.requestId = requestId;
    const headers = { 'x-ms-request-id': requestId, 'x-ms-version': '2018-11-09', server: 'Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0' };
    const xml = (status: number, code: string, message: string, detail?: string): Reply => ({ status, text: blobError(code, message, requestId, detail) });

    const rule = this.#takeRule(entry);
    if (!(await this.#pause(rule, req, entry, 'before'))) return;
    if (rule?.action.kind === 'drop' && rule.action.when === 'before') return this.#drop(req, entry);

    let reply: Reply;
    const a = rule?.action;
    if (a?.kind === 'status') {
      reply = typeof a.body === 'string' ? { status: a.status, headers: a.headers ?? {}, text: a.body } : xml(a.status, a.status === 503 ? 'ServerBusy' : 'InternalError', a.status === 503 ? 'The server is busy.' : 'Server encountered an internal error. Please try again after some time.');
    } else if (req.headers.authorization !== undefined) {
      // The signed URL is the authorisation; a second one is refused (and, worse, leaked the token here).
      reply = xml(400, 'InvalidAuthenticationInfo', 'Authentication information is not given in the correct format. Check the value of Authorization header.');
    } else {
      const verdict = verifySigned(url, this.#secret, Math.floor(this.#now() / 1000));
      if (!verdict.ok) reply = xml(verdict.status, verdict.code, verdict.message, verdict.detail);
      else if (req.method !== 'GET') {
        // The signature grants a GET; clients must take size and digest from the API's metadata instead.
        reply = xml(403, 'AuthenticationFailed', 'Server failed to authenticate the request.', `This request is not authorized to perform this operation using this method (${req.method}).`);
      } else {
        const repo = this.state.repos.find((r) => r.id === verdict.parts.repoId);
        const asset = repo ? this.#findAsset(repo, verdict.parts.assetId)?.asset : undefined;
        if (!repo || !asset) reply = xml(404, 'BlobNotFound', 'The specified blob does not exist.');
        else if (verdict.hops > 0) {
          const next = signedUrl(this.bytesUrl, this.#secret, verdict.parts, verdict.hops - 1);
          reply = { status: 302, headers: { location: next } };
        } else reply = { status: 200, asset: { asset, delivery: this.#deliveryOf(asset) } };
      }
    }
    if (!(await this.#pause(rule, req, entry, 'after'))) return;
    if (rule?.action.kind === 'drop' && rule.action.when === 'after') return this.#drop(req, entry);
    await this.#send(req, res, entry, reply, headers, 'xml');
  }

  /** A bug in the fake (or a client gone mid-request): answer 500 if still possible, keep the error for the test. */
  #broke(res: http.ServerResponse, err: unknown): void {
    this.errors.push(err);
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`fake GitHub broke: ${String(err)}`);
    } else res.destroy();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const rule of this.#rules) rule.release();
    const stop = (server: http.Server): Promise<void> =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    await Promise.all([stop(this.#api), stop(this.#bytes)]);
  }
}

export async function startFakeGitHub(options: FakeGitHubOptions = {}): Promise<FakeGitHub> {
  const fake = new FakeGitHubServer(options);
  await fake.listen();
  return fake;
}

export type { Delivery, FakeAsset, FakeComment, FakeIssue, FakeLabel, FakeMilestone, FakeRelease, FakeRepo, FakeToken, Permission } from './state.ts';
export type { Fault, Hold, RequestMatch, ServerName } from './faults.ts';
export { sha256Digest } from './state.ts';
