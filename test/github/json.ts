import type { FakeAsset, FakeComment, FakeIssue, FakeLabel, FakeMilestone, FakeRelease, FakeRepo, FakeUser, GitHubState, Permission } from './state.ts';
import { atLeast } from './state.ts';

/**
 * GitHub's JSON shapes for the resources dispatch reads, with the fields real
 * responses carry (ids, node ids, API and web URLs, timestamps, users).
 */

export interface Urls {
  /** API base: `http://127.0.0.1:PORT` or `http://127.0.0.1:PORT/api/v3`. */
  readonly api: string;
  /** Web base (github.com's role): the same origin, without the API prefix. */
  readonly web: string;
}

/** GitHub's timestamps: ISO 8601, whole seconds, `Z`. */
export function iso(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : iso(ms);
}

function nodeId(kind: string, id: number): string {
  return Buffer.from(`0${kind.length}:${kind}${id}`).toString('base64').replace(/=+$/, '');
}

export function simpleUser(urls: Urls, user: FakeUser): Record<string, unknown> {
  const url = `${urls.api}/users/${user.login}`;
  return {
    login: user.login,
    id: user.id,
    node_id: nodeId(user.type === 'Organization' ? 'Organization' : 'User', user.id),
    avatar_url: `${urls.web}/avatars/u/${user.id}?v=4`,
    gravatar_id: '',
    url,
    html_url: `${urls.web}/${user.login}`,
    followers_url: `${url}/followers`,
    following_url: `${url}/following{/other_user}`,
    gists_url: `${url}/gists{/gist_id}`,
    starred_url: `${url}/starred{/owner}{/repo}`,
    subscriptions_url: `${url}/subscriptions`,
    organizations_url: `${url}/orgs`,
    repos_url: `${url}/repos`,
    events_url: `${url}/events{/privacy}`,
    received_events_url: `${url}/received_events`,
    type: user.type,
    user_view_type: 'public',
    site_admin: false,
  };
}

/** `GET /user`: the simple user plus profile fields. */
export function privateUser(urls: Urls, user: FakeUser): Record<string, unknown> {
  return {
    ...simpleUser(urls, user),
    name: user.name,
    company: null,
    blog: '',
    location: null,
    email: null,
    hireable: null,
    bio: null,
    twitter_username: null,
    notification_email: null,
    public_repos: 0,
    public_gists: 0,
    followers: 0,
    following: 0,
    created_at: iso(user.createdAt),
    updated_at: iso(user.createdAt),
  };
}

export function repoUrl(urls: Urls, repo: FakeRepo): string {
  return `${urls.api}/repos/${repo.owner}/${repo.name}`;
}

export function repository(urls: Urls, state: GitHubState, repo: FakeRepo, permission: Permission | null, authenticated: boolean): Record<string, unknown> {
  const url = repoUrl(urls, repo);
  const owner = state.user(repo.owner);
  return {
    id: repo.id,
    node_id: nodeId('Repository', repo.id),
    name: repo.name,
    full_name: `${repo.owner}/${repo.name}`,
    private: repo.private,
    owner: simpleUser(urls, owner),
    html_url: `${urls.web}/${repo.owner}/${repo.name}`,
    description: repo.description,
    fork: false,
    url,
    releases_url: `${url}/releases{/id}`,
    issues_url: `${url}/issues{/number}`,
    issue_comment_url: `${url}/issues/comments{/number}`,
    labels_url: `${url}/labels{/name}`,
    milestones_url: `${url}/milestones{/number}`,
    created_at: iso(repo.createdAt),
    updated_at: iso(repo.createdAt),
    pushed_at: iso(repo.createdAt),
    has_issues: repo.hasIssues,
    has_projects: true,
    has_wiki: true,
    has_downloads: true,
    archived: false,
    disabled: false,
    visibility: repo.private ? 'private' : 'public',
    open_issues_count: repo.issues.filter((i) => i.state === 'open').length,
    default_branch: repo.defaultBranch,
    // Only an authenticated request learns its own role.
    ...(authenticated
      ? {
          permissions: {
            admin: atLeast(permission, 'admin'),
            maintain: atLeast(permission, 'maintain'),
            push: atLeast(permission, 'push'),
            triage: atLeast(permission, 'triage'),
            pull: atLeast(permission, 'pull'),
          },
        }
      : {}),
  };
}

export function asset(urls: Urls, state: GitHubState, repo: FakeRepo, release: FakeRelease, a: FakeAsset): Record<string, unknown> {
  return {
    url: `${repoUrl(urls, repo)}/releases/assets/${a.id}`,
    id: a.id,
    node_id: nodeId('ReleaseAsset', a.id),
    name: a.name,
    label: a.label,
    uploader: simpleUser(urls, state.user(a.uploader)),
    content_type: a.contentType,
    state: a.state,
    size: a.size,
    digest: a.digest,
    download_count: a.downloadCount,
    created_at: iso(a.createdAt),
    updated_at: iso(a.updatedAt),
    browser_download_url: `${urls.web}/${repo.owner}/${repo.name}/releases/download/${encodeURIComponent(release.tag)}/${encodeURIComponent(a.name)}`,
  };
}

export function release(urls: Urls, state: GitHubState, repo: FakeRepo, r: FakeRelease): Record<string, unknown> {
  const url = `${repoUrl(urls, repo)}/releases/${r.id}`;
  const web = `${urls.web}/${repo.owner}/${repo.name}`;
  return {
    url,
    assets_url: `${url}/assets`,
    upload_url: `${url}/assets{?name,label}`,
    html_url: r.draft ? `${web}/releases/tag/untagged-${r.id}` : `${web}/releases/tag/${encodeURIComponent(r.tag)}`,
    id: r.id,
    author: simpleUser(urls, state.user(r.author)),
    node_id: nodeId('Release', r.id),
    tag_name: r.tag,
    target_commitish: r.targetCommitish,
    name: r.name,
    draft: r.draft,
    immutable: false,
    prerelease: r.prerelease,
    created_at: iso(r.createdAt),
    updated_at: iso(Math.max(r.createdAt, ...r.assets.map((a) => a.updatedAt))),
    published_at: isoOrNull(r.publishedAt),
    assets: r.assets.map((a) => asset(urls, state, repo, r, a)),
    tarball_url: `${repoUrl(urls, repo)}/tarball/${encodeURIComponent(r.tag)}`,
    zipball_url: `${repoUrl(urls, repo)}/zipball/${encodeURIComponent(r.tag)}`,
    body: r.body,
  };
}

export function label(urls: Urls, repo: FakeRepo, l: FakeLabel): Record<string, unknown> {
  return {
    id: l.id,
    node_id: nodeId('Label', l.id),
    url: `${repoUrl(urls, repo)}/labels/${encodeURIComponent(l.name)}`,
    name: l.name,
    color: l.color,
    default: l.default,
    description: l.description,
  };
}

export function milestone(urls: Urls, state: GitHubState, repo: FakeRepo, m: FakeMilestone): Record<string, unknown> {
  const url = `${repoUrl(urls, repo)}/milestones/${m.number}`;
  const issues = repo.issues.filter((i) => i.milestone === m.number);
  return {
    url,
    html_url: `${urls.web}/${repo.owner}/${repo.name}/milestone/${m.number}`,
    labels_url: `${url}/labels`,
    id: m.id,
    node_id: nodeId('Milestone', m.id),
    number: m.number,
    title: m.title,
    description: m.description,
    creator: simpleUser(urls, state.user(m.creator)),
    open_issues: issues.filter((i) => i.state === 'open').length,
    closed_issues: issues.filter((i) => i.state === 'closed').length,
    state: m.state,
    created_at: iso(m.createdAt),
    updated_at: iso(m.updatedAt),
    due_on: isoOrNull(m.dueOn),
    closed_at: isoOrNull(m.closedAt),
  };
}

function association(state: GitHubState, repo: FakeRepo, login: string): string {
  if (login.toLowerCase() === repo.owner.toLowerCase()) return 'OWNER';
  if (state.assignable(repo, login)) return 'COLLABORATOR';
  return 'NONE';
}

const NO_REACTIONS = { total_count: 0, '+1': 0, '-1': 0, laugh: 0, hooray: 0, confused: 0, heart: 0, rocket: 0, eyes: 0 };

export function issue(urls: Urls, state: GitHubState, repo: FakeRepo, i: FakeIssue): Record<string, unknown> {
  const url = `${repoUrl(urls, repo)}/issues/${i.number}`;
  const web = `${urls.web}/${repo.owner}/${repo.name}`;
  const assignees = i.assignees.map((login) => simpleUser(urls, state.user(login)));
  const m = i.milestone === null ? undefined : repo.milestones.find((x) => x.number === i.milestone);
  return {
    url,
    repository_url: repoUrl(urls, repo),
    labels_url: `${url}/labels{/name}`,
    comments_url: `${url}/comments`,
    events_url: `${url}/events`,
    html_url: i.pullRequest ? `${web}/pull/${i.number}` : `${web}/issues/${i.number}`,
    id: i.id,
    node_id: nodeId(i.pullRequest ? 'PullRequest' : 'Issue', i.id),
    number: i.number,
    title: i.title,
    user: simpleUser(urls, state.user(i.user)),
    labels: i.labels.flatMap((name) => {
      const l = repo.labels.get(name.toLowerCase());
      return l ? [label(urls, repo, l)] : [];
    }),
    state: i.state,
    locked: false,
    assignee: assignees[0] ?? null,
    assignees,
    milestone: m ? milestone(urls, state, repo, m) : null,
    comments: i.comments.length,
    created_at: iso(i.createdAt),
    updated_at: iso(i.updatedAt),
    closed_at: isoOrNull(i.closedAt),
    author_association: association(state, repo, i.user),
    type: null,
    active_lock_reason: null,
    ...(i.pullRequest
      ? {
          draft: false,
          pull_request: {
            url: `${repoUrl(urls, repo)}/pulls/${i.number}`,
            html_url: `${web}/pull/${i.number}`,
            diff_url: `${web}/pull/${i.number}.diff`,
            patch_url: `${web}/pull/${i.number}.patch`,
            merged_at: null,
          },
        }
      : {}),
    body: i.body,
    closed_by: null,
    reactions: { url: `${url}/reactions`, ...NO_REACTIONS },
    timeline_url: `${url}/timeline`,
    performed_via_github_app: null,
    state_reason: i.state === 'closed' ? 'completed' : null,
  };
}

export function comment(urls: Urls, state: GitHubState, repo: FakeRepo, i: FakeIssue, c: FakeComment): Record<string, unknown> {
  const url = `${repoUrl(urls, repo)}/issues/comments/${c.id}`;
  return {
    url,
    html_url: `${urls.web}/${repo.owner}/${repo.name}/issues/${i.number}#issuecomment-${c.id}`,
    issue_url: `${repoUrl(urls, repo)}/issues/${i.number}`,
    id: c.id,
    node_id: nodeId('IssueComment', c.id),
    user: simpleUser(urls, state.user(c.user)),
    created_at: iso(c.createdAt),
    updated_at: iso(c.updatedAt),
    author_association: association(state, repo, c.user),
    body: c.body,
    reactions: { url: `${url}/reactions`, ...NO_REACTIONS },
    performed_via_github_app: null,
  };
}
