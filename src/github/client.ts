import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Octokit } from '@octokit/rest';
import type { Readable } from 'node:stream';
import { request as undiciRequest } from 'undici';
import type { Log } from '../log.ts';
import { GitHubError, toGitHubError } from './errors.ts';

/** The octokit and undici adapter: the only file that talks to GitHub. */

export interface ReleaseAsset {
  readonly id: number;
  readonly name: string;
  readonly contentType: string;
  readonly size: number;
  /** Lower-case hex sha256 when GitHub gives a digest (assets since mid-2025), else null. */
  readonly sha256: string | null;
  readonly updatedAt: string;
  readonly state: string;
}

export interface Release {
  readonly id: number;
  readonly tag: string;
  readonly name: string | null;
  readonly assets: readonly ReleaseAsset[];
}

export interface IssueRef {
  readonly number: number;
  readonly url: string;
}

export interface NewIssue {
  readonly title: string;
  readonly body: string;
  readonly labels: readonly string[];
  readonly assignees: readonly string[];
  readonly milestone: number | null;
}

export interface GitHubOptions {
  readonly apiUrl: string;
  readonly token: string;
  readonly owner: string;
  readonly repo: string;
  readonly log: Log;
  /** Spacing between writes; GitHub asks for about a second, issue creation more. Tests shorten it. */
  readonly throttle?: { readonly enabled: boolean };
}

/** How many redirects an asset download may take: GitHub uses one. */
const MAX_REDIRECTS = 3;

export class GitHub {
  readonly owner: string;
  readonly repo: string;
  readonly apiUrl: string;
  readonly #octokit: Octokit;
  readonly #token: string;
  /** Aborts every request in flight when dispatch stops (fetch's own 300 s timeouts bound a hung GitHub). */
  readonly #closed = new AbortController();
  #login: Promise<string | undefined> | undefined;

  constructor(options: GitHubOptions) {
    this.owner = options.owner;
    this.repo = options.repo;
    this.apiUrl = options.apiUrl.replace(/\/+$/, '');
    this.#token = options.token;
    const Client = Octokit.plugin(retry, throttling);
    const log = options.log;
    this.#octokit = new Client({
      auth: options.token,
      baseUrl: this.apiUrl,
      userAgent: 'dispatch',
      // Failed requests come back as errors that we report ourselves, with context.
      log: { debug: () => undefined, info: () => undefined, warn: (m: string) => log('github', m), error: () => undefined },
      throttle: {
        enabled: options.throttle?.enabled ?? true,
        onRateLimit: (after: number, opts: { method: string; url: string }, _o: unknown, count: number) => {
          log('github', `rate limited on ${opts.method} ${opts.url}: waiting ${after}s for the reset (retry ${count + 1})`);
          return count < 10;
        },
        onSecondaryRateLimit: (after: number, opts: { method: string; url: string }, _o: unknown, count: number) => {
          log('github', `secondary rate limit on ${opts.method} ${opts.url}: waiting ${after}s (retry ${count + 1})`);
          return count < 10;
        },
      },
    });
    this.#octokit.hook.before('request', (options) => {
      options.request = { ...options.request, signal: this.#closed.signal };
    });
  }

  /** Abort every request in flight; the client is not used after this. */
  close(): void {
    this.#closed.abort();
  }

  async release(tag: string): Promise<Release> {
    try {
      // One quick retry: at start-up a person is waiting for the verdict.
      const { data } = await this.#octokit.rest.repos.getReleaseByTag({ owner: this.owner, repo: this.repo, tag, request: { retries: 1 } });
      return {
        id: data.id,
        tag: data.tag_name,
        name: data.name,
        assets: data.assets.map((a) => {
          const digest = (a as { digest?: string | null }).digest;
          return {
            id: a.id,
            name: a.name,
            contentType: a.content_type,
            size: a.size,
            sha256: typeof digest === 'string' && digest.startsWith('sha256:') ? digest.slice(7).toLowerCase() : null,
            updatedAt: a.updated_at,
            state: a.state,
          };
        }),
      };
    } catch (err) {
      throw toGitHubError(err, `release ${tag} of ${this.owner}/${this.repo}`);
    }
  }

  /** Check at start that the token works and sees the repository, so a bad one fails now, not at the first report. */
  async checkAccess(): Promise<void> {
    try {
      await this.#octokit.rest.repos.get({ owner: this.owner, repo: this.repo, request: { retries: 1 } });
    } catch (err) {
      throw toGitHubError(err, `repository ${this.owner}/${this.repo}`);
    }
  }

  /** The token's login, for finding our own issues; undefined when the token has no user (an app). */
  login(): Promise<string | undefined> {
    this.#login ??= this.#octokit.rest.users.getAuthenticated().then(
      ({ data }) => data.login,
      () => undefined,
    );
    return this.#login;
  }

  /** Every milestone, open and closed, by title. */
  async milestones(): Promise<Map<string, number>> {
    try {
      const all = await this.#octokit.paginate(this.#octokit.rest.issues.listMilestones, { owner: this.owner, repo: this.repo, state: 'all', per_page: 100 });
      return new Map(all.map((m) => [m.title, m.number]));
    } catch (err) {
      throw toGitHubError(err, `milestones of ${this.owner}/${this.repo}`);
    }
  }

  async createIssue(issue: NewIssue): Promise<IssueRef> {
    try {
      const { data } = await this.#octokit.rest.issues.create({
        owner: this.owner,
        repo: this.repo,
        title: issue.title,
        body: issue.body,
        labels: [...issue.labels],
        assignees: [...issue.assignees],
        ...(issue.milestone === null ? {} : { milestone: issue.milestone }),
        // plugin-retry would repeat a POST after a 5xx that may have created the
        // issue: the outbox retries instead, after checking for its marker.
        request: { retries: 0 },
      });
      return { number: data.number, url: data.html_url };
    } catch (err) {
      throw toGitHubError(err, `creating an issue in ${this.owner}/${this.repo}`);
    }
  }

  async createComment(issue: number, body: string): Promise<void> {
    try {
      await this.#octokit.rest.issues.createComment({ owner: this.owner, repo: this.repo, issue_number: issue, body, request: { retries: 0 } });
    } catch (err) {
      throw toGitHubError(err, `commenting on ${this.owner}/${this.repo}#${issue}`);
    }
  }

  /** Our issue whose body holds `marker`, created since `since` (ms), if any. */
  async findIssue(marker: string, since: number): Promise<IssueRef | undefined> {
    const creator = await this.login();
    try {
      const iterator = this.#octokit.paginate.iterator(this.#octokit.rest.issues.listForRepo, {
        owner: this.owner,
        repo: this.repo,
        state: 'all',
        sort: 'created',
        direction: 'desc',
        // Clock skew between us and GitHub: look a little further back.
        since: new Date(since - 10 * 60_000).toISOString(),
        per_page: 100,
        ...(creator ? { creator } : {}),
      });
      for await (const page of iterator) {
        for (const issue of page.data) {
          if (issue.body?.includes(marker)) return { number: issue.number, url: issue.html_url };
        }
      }
      return undefined;
    } catch (err) {
      throw toGitHubError(err, `looking for an earlier copy of a report in ${this.owner}/${this.repo}`);
    }
  }

  /** Bodies of every comment on an issue, oldest first. */
  async commentBodies(issue: number): Promise<string[]> {
    try {
      const all = await this.#octokit.paginate(this.#octokit.rest.issues.listComments, { owner: this.owner, repo: this.repo, issue_number: issue, per_page: 100 });
      return all.map((c) => c.body ?? '');
    } catch (err) {
      throw toGitHubError(err, `reading the comments of ${this.owner}/${this.repo}#${issue}`);
    }
  }

  /**
   * An asset's bytes through the assets API, which works for private
   * repositories. GitHub answers 302 to a signed URL on another host: the
   * token goes to the API's origin only, never to where it redirects.
   */
  async assetBytes(assetId: number, signal: AbortSignal): Promise<Readable> {
    const what = `downloading asset ${assetId} of ${this.owner}/${this.repo}`;
    const apiOrigin = new URL(this.apiUrl).origin;
    let url = new URL(`${this.apiUrl}/repos/${encodeURIComponent(this.owner)}/${encodeURIComponent(this.repo)}/releases/assets/${assetId}`);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
      const headers: Record<string, string> = { accept: 'application/octet-stream', 'user-agent': 'dispatch' };
      // The same scheme octokit sends for a personal access token.
      if (url.origin === apiOrigin) headers.authorization = `token ${this.#token}`;
      let response;
      try {
        response = await undiciRequest(url, { method: 'GET', headers, signal, headersTimeout: 60_000, bodyTimeout: 60_000 });
      } catch (err) {
        throw new GitHubError(`${what}: cannot reach ${url.host} (${(err as { code?: string }).code ?? (err as Error).message})`, { failure: 'network', cause: err });
      }
      const { statusCode } = response;
      if (statusCode >= 300 && statusCode < 400 && statusCode !== 304) {
        await response.body.dump();
        const location = response.headers.location;
        if (typeof location !== 'string') throw new GitHubError(`${what}: redirect ${statusCode} without a Location`, { failure: 'server', status: statusCode });
        url = new URL(location, url);
        continue;
      }
      if (statusCode === 200) return response.body;
      const text = await response.body.text().catch(() => '');
      const message = (() => {
        try {
          return (JSON.parse(text) as { message?: string }).message;
        } catch {
          return undefined;
        }
      })();
      throw toGitHubError({ status: statusCode, message, response: { headers: response.headers as Record<string, string>, data: { message } } }, `${what} from ${url.host}`);
    }
    throw new GitHubError(`${what}: more than ${MAX_REDIRECTS} redirects`, { failure: 'server' });
  }

  /** For logs: which repository on which GitHub, never with the token. */
  describe(): string {
    return `${this.owner}/${this.repo} on ${new URL(this.apiUrl).host}`;
  }
}
