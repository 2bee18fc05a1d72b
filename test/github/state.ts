import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/**
 * What the fake GitHub knows: users, repositories, releases, milestones, issues.
 * Plain mutable objects, so a test can set up a case or change one mid-run
 * (rename an asset, close a milestone, disable issues) and read back what a
 * client did.
 */

/** A repository role, lowest first; push and above may set labels, assignees and milestones on a new issue. */
export type Permission = 'pull' | 'triage' | 'push' | 'maintain' | 'admin';
export const PERMISSIONS: readonly Permission[] = ['pull', 'triage', 'push', 'maintain', 'admin'];

export function atLeast(have: Permission | null, want: Permission): boolean {
  return have !== null && PERMISSIONS.indexOf(have) >= PERMISSIONS.indexOf(want);
}

export interface FakeUser {
  readonly id: number;
  readonly login: string;
  type: 'User' | 'Organization' | 'Bot';
  name: string | null;
  readonly createdAt: number;
}

export interface FakeToken {
  readonly token: string;
  readonly login: string;
  /**
   * Role per repository ('owner/name', or '*' for any). Without an entry: admin
   * on repositories the login owns, pull on other public ones, nothing on
   * other private ones (they are then invisible: 404).
   */
  repos: Record<string, Permission>;
  /** A fine-grained token's "Issues" permission: 'read' cannot file, 'none' cannot even list. */
  issues: 'none' | 'read' | 'write';
}

export interface FakeLabel {
  readonly id: number;
  name: string;
  color: string;
  description: string | null;
  default: boolean;
}

export interface FakeMilestone {
  readonly id: number;
  readonly number: number;
  title: string;
  state: 'open' | 'closed';
  description: string | null;
  dueOn: number | null;
  creator: string;
  createdAt: number;
  updatedAt: number;
  closedAt: number | null;
}

export interface FakeComment {
  readonly id: number;
  body: string;
  user: string;
  createdAt: number;
  updatedAt: number;
}

export interface FakeIssue {
  readonly id: number;
  readonly number: number;
  title: string;
  body: string | null;
  /** Label names as stored (the repository's spelling). */
  labels: string[];
  assignees: string[];
  milestone: number | null;
  user: string;
  state: 'open' | 'closed';
  createdAt: number;
  updatedAt: number;
  closedAt: number | null;
  /** In order of creation. */
  comments: FakeComment[];
  /** GitHub's issues endpoints list pull requests too, with a `pull_request` key. */
  pullRequest: boolean;
}

/** How an asset's bytes reach a client; per-asset values override the fake's default. */
export interface Delivery {
  /** 'redirect' (GitHub's usual answer): 302 to a signed URL on the bytes host. 'direct': 200 with the bytes from the API. */
  mode: 'redirect' | 'direct';
  /** Redirects on the bytes host before the one that serves (tests "at most N redirects"). */
  extraRedirects: number;
  /** Lifetime of a signed URL, seconds. */
  ttlSeconds: number;
  /** Stream slowly: this many bytes, then wait `tickMs`. */
  bytesPerTick: number | null;
  tickMs: number;
  /** Drop the connection after this many body bytes (the headers announce the full length). */
  cutAfter: number | null;
}

export interface FakeAsset {
  readonly id: number;
  name: string;
  label: string | null;
  contentType: string;
  state: 'uploaded' | 'open' | 'starter';
  /** The bytes, or a file to stream them from (big assets). */
  bytes: Buffer | null;
  path: string | null;
  size: number;
  /** `sha256:<hex>`, null (assets uploaded before mid-2025), or whatever a test sets. */
  digest: string | null;
  downloadCount: number;
  uploader: string;
  createdAt: number;
  updatedAt: number;
  delivery: Partial<Delivery>;
}

export interface FakeRelease {
  readonly id: number;
  tag: string;
  name: string | null;
  body: string | null;
  draft: boolean;
  prerelease: boolean;
  author: string;
  targetCommitish: string;
  createdAt: number;
  publishedAt: number | null;
  assets: FakeAsset[];
}

export interface FakeRepo {
  readonly id: number;
  readonly owner: string;
  readonly name: string;
  private: boolean;
  hasIssues: boolean;
  description: string | null;
  defaultBranch: string;
  /** Logins that may be assigned (the owner always may). */
  collaborators: Set<string>;
  /** By lower-case name: GitHub matches label names case-insensitively. */
  labels: Map<string, FakeLabel>;
  releases: FakeRelease[];
  milestones: FakeMilestone[];
  issues: FakeIssue[];
  createdAt: number;
}

export interface RepoOptions {
  readonly owner: string;
  readonly name: string;
  readonly private?: boolean;
  readonly hasIssues?: boolean;
  readonly description?: string | null;
  readonly collaborators?: readonly string[];
  readonly labels?: readonly (string | { readonly name: string; readonly color?: string; readonly description?: string | null })[];
}

export interface AssetOptions {
  readonly name: string;
  readonly label?: string | null;
  readonly contentType?: string;
  readonly state?: FakeAsset['state'];
  /** The content: bytes, or a path to a file (read only when served; hashed once when added). */
  readonly bytes?: Buffer | string;
  readonly path?: string;
  /** Default: sha256 of the content. `null`: no digest, as on old assets. A string: used verbatim (e.g. a wrong one). */
  readonly digest?: string | null;
  readonly size?: number;
  readonly id?: number;
  readonly downloadCount?: number;
  readonly createdAt?: number;
  readonly updatedAt?: number;
  readonly delivery?: Partial<Delivery>;
}

export interface ReleaseOptions {
  readonly tag: string;
  readonly name?: string | null;
  readonly body?: string | null;
  readonly draft?: boolean;
  readonly prerelease?: boolean;
  readonly author?: string;
  readonly id?: number;
  readonly assets?: readonly AssetOptions[];
}

export interface MilestoneOptions {
  readonly title: string;
  readonly number?: number;
  readonly state?: 'open' | 'closed';
  readonly description?: string | null;
  readonly dueOn?: number | null;
}

export interface IssueOptions {
  readonly title: string;
  readonly body?: string | null;
  readonly labels?: readonly string[];
  readonly assignees?: readonly string[];
  readonly milestone?: number | null;
  readonly user?: string;
  readonly state?: 'open' | 'closed';
  readonly createdAt?: number;
  readonly updatedAt?: number;
  readonly comments?: readonly string[];
  readonly pullRequest?: boolean;
}

export interface TokenOptions {
  readonly token: string;
  readonly login: string;
  readonly repos?: Record<string, Permission>;
  readonly issues?: FakeToken['issues'];
}

export type IdKind = 'user' | 'repo' | 'release' | 'asset' | 'label' | 'milestone' | 'issue' | 'comment';

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Hash a file in chunks (a big asset never sits in memory). */
export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      hash.update(chunk.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return `sha256:${hash.digest('hex')}`;
}

export class GitHubState {
  readonly users = new Map<string, FakeUser>();
  readonly tokens = new Map<string, FakeToken>();
  readonly repos: FakeRepo[] = [];
  readonly #now: () => number;
  // GitHub's ids are global per kind and large; distinct bases make a mix-up show.
  readonly #ids: Record<IdKind, number> = { user: 1000, repo: 100_000, release: 200_000, asset: 300_000, label: 400_000, milestone: 500_000, issue: 600_000, comment: 700_000 };

  constructor(now: () => number) {
    this.#now = now;
  }

  nextId(kind: IdKind): number {
    this.#ids[kind] += 1;
    return this.#ids[kind];
  }

  user(login: string, type: FakeUser['type'] = 'User'): FakeUser {
    const key = login.toLowerCase();
    let user = this.users.get(key);
    if (!user) {
      user = { id: this.nextId('user'), login, type, name: null, createdAt: this.#now() };
      this.users.set(key, user);
    }
    return user;
  }

  addToken(options: TokenOptions): FakeToken {
    this.user(options.login);
    const token: FakeToken = { token: options.token, login: options.login, repos: { ...options.repos }, issues: options.issues ?? 'write' };
    this.tokens.set(options.token, token);
    return token;
  }

  addRepo(options: RepoOptions): FakeRepo {
    if (this.findRepo(options.owner, options.name)) throw new Error(`fake GitHub: ${options.owner}/${options.name} exists already`);
    this.user(options.owner);
    const repo: FakeRepo = {
      id: this.nextId('repo'),
      owner: options.owner,
      name: options.name,
      private: options.private ?? false,
      hasIssues: options.hasIssues ?? true,
      description: options.description ?? null,
      defaultBranch: 'main',
      collaborators: new Set(options.collaborators ?? []),
      labels: new Map(),
      releases: [],
      milestones: [],
      issues: [],
      createdAt: this.#now(),
    };
    for (const login of repo.collaborators) this.user(login);
    for (const label of options.labels ?? []) this.addLabel(repo, typeof label === 'string' ? { name: label } : label);
    this.repos.push(repo);
    return repo;
  }

  findRepo(owner: string, name: string): FakeRepo | undefined {
    // Owner and repository names are case-insensitive on GitHub.
    return this.repos.find((r) => r.owner.toLowerCase() === owner.toLowerCase() && r.name.toLowerCase() === name.toLowerCase());
  }

  repo(fullName: string): FakeRepo {
    const [owner, name, extra] = fullName.split('/');
    const repo = owner && name && extra === undefined ? this.findRepo(owner, name) : undefined;
    if (!repo) throw new Error(`fake GitHub: no repository ${fullName}`);
    return repo;
  }

  addLabel(repo: FakeRepo, label: { readonly name: string; readonly color?: string; readonly description?: string | null }): FakeLabel {
    const existing = repo.labels.get(label.name.toLowerCase());
    if (existing) return existing;
    const made: FakeLabel = { id: this.nextId('label'), name: label.name, color: label.color ?? 'ededed', description: label.description ?? null, default: false };
    repo.labels.set(label.name.toLowerCase(), made);
    return made;
  }

  addRelease(repo: FakeRepo, options: ReleaseOptions): FakeRelease {
    const now = this.#now();
    const author = options.author ?? repo.owner;
    this.user(author);
    const release: FakeRelease = {
      id: options.id ?? this.nextId('release'),
      tag: options.tag,
      name: options.name === undefined ? options.tag : options.name,
      body: options.body ?? null,
      draft: options.draft ?? false,
      prerelease: options.prerelease ?? false,
      author,
      targetCommitish: repo.defaultBranch,
      createdAt: now,
      publishedAt: options.draft ? null : now,
      assets: [],
    };
    repo.releases.push(release);
    for (const asset of options.assets ?? []) this.addAsset(release, asset, author);
    return release;
  }

  addAsset(release: FakeRelease, options: AssetOptions, uploader = release.author): FakeAsset {
    const now = this.#now();
    let bytes: Buffer | null = null;
    let path: string | null = null;
    let size: number;
    let digest: string | null;
    if (options.path !== undefined) {
      path = options.path;
      size = options.size ?? statSync(path).size;
      digest = options.digest === undefined ? sha256File(path) : options.digest;
    } else {
      bytes = typeof options.bytes === 'string' ? Buffer.from(options.bytes) : (options.bytes ?? Buffer.alloc(0));
      size = options.size ?? bytes.length;
      digest = options.digest === undefined ? sha256Digest(bytes) : options.digest;
    }
    const asset: FakeAsset = {
      id: options.id ?? this.nextId('asset'),
      name: options.name,
      label: options.label ?? null,
      contentType: options.contentType ?? 'application/octet-stream',
      state: options.state ?? 'uploaded',
      bytes,
      path,
      size,
      digest,
      downloadCount: options.downloadCount ?? 0,
      uploader,
      createdAt: options.createdAt ?? now,
      updatedAt: options.updatedAt ?? options.createdAt ?? now,
      delivery: { ...options.delivery },
    };
    release.assets.push(asset);
    return asset;
  }

  addMilestone(repo: FakeRepo, options: MilestoneOptions): FakeMilestone {
    const now = this.#now();
    const number = options.number ?? Math.max(0, ...repo.milestones.map((m) => m.number)) + 1;
    if (repo.milestones.some((m) => m.number === number)) throw new Error(`fake GitHub: milestone ${number} exists already`);
    const state = options.state ?? 'open';
    const milestone: FakeMilestone = {
      id: this.nextId('milestone'),
      number,
      title: options.title,
      state,
      description: options.description ?? null,
      dueOn: options.dueOn ?? null,
      creator: repo.owner,
      createdAt: now,
      updatedAt: now,
      closedAt: state === 'closed' ? now : null,
    };
    repo.milestones.push(milestone);
    return milestone;
  }

  /** Issues and pull requests share one sequence of numbers per repository. */
  nextIssueNumber(repo: FakeRepo): number {
    return Math.max(0, ...repo.issues.map((i) => i.number)) + 1;
  }

  addIssue(repo: FakeRepo, options: IssueOptions): FakeIssue {
    const now = this.#now();
    const createdAt = options.createdAt ?? now;
    const user = options.user ?? repo.owner;
    this.user(user);
    const labels = (options.labels ?? []).map((name) => this.addLabel(repo, { name }).name);
    const issue: FakeIssue = {
      id: this.nextId('issue'),
      number: this.nextIssueNumber(repo),
      title: options.title,
      body: options.body ?? null,
      labels,
      assignees: [...(options.assignees ?? [])],
      milestone: options.milestone ?? null,
      user,
      state: options.state ?? 'open',
      createdAt,
      updatedAt: options.updatedAt ?? createdAt,
      closedAt: options.state === 'closed' ? (options.updatedAt ?? createdAt) : null,
      comments: [],
      pullRequest: options.pullRequest ?? false,
    };
    for (const body of options.comments ?? []) issue.comments.push({ id: this.nextId('comment'), body, user, createdAt, updatedAt: createdAt });
    repo.issues.push(issue);
    return issue;
  }

  /** The role a token has on a repository; null: it cannot see it. */
  permission(token: FakeToken | null, repo: FakeRepo): Permission | null {
    if (!token) return repo.private ? null : 'pull';
    const fullName = `${repo.owner}/${repo.name}`;
    const explicit = Object.entries(token.repos).find(([key]) => key.toLowerCase() === fullName.toLowerCase())?.[1] ?? token.repos['*'];
    if (explicit) return explicit;
    if (token.login.toLowerCase() === repo.owner.toLowerCase()) return 'admin';
    return repo.private ? null : 'pull';
  }

  /** Who may be assigned: the owner, listed collaborators, and holders of a token with push access. */
  assignable(repo: FakeRepo, login: string): boolean {
    const l = login.toLowerCase();
    if (repo.owner.toLowerCase() === l) return true;
    if ([...repo.collaborators].some((c) => c.toLowerCase() === l)) return true;
    return [...this.tokens.values()].some((t) => t.login.toLowerCase() === l && atLeast(this.permission(t, repo), 'push'));
  }

  /** Canonical spelling of a login that exists. */
  login(login: string): string {
    return this.users.get(login.toLowerCase())?.login ?? login;
  }
}
