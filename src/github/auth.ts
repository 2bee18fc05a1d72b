import { execFile } from 'node:child_process';

/** How dispatch explains getting a token; printed when none is found. */
export const TOKEN_HELP = [
  'dispatch needs a GitHub token to read the release and file issues. Give it one of these ways:',
  '  --token TOKEN, or the GITHUB_TOKEN or GH_TOKEN environment variable, or log in with `gh auth login`.',
  'Create one at https://github.com/settings/personal-access-tokens (GitHub Enterprise: on your server):',
  '  fine-grained: the repository, with Contents read-only and Issues read and write;',
  '  classic: the `repo` scope.',
].join('\n');

export interface TokenSources {
  /** --token */
  readonly flag?: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** `gh auth token` for a host; undefined when gh is missing or logged out. */
  readonly gh: (host: string) => Promise<string | undefined>;
}

export interface FoundToken {
  readonly token: string;
  /** Where it came from, for the log (never the token itself). */
  readonly from: string;
}

/** --token, then GITHUB_TOKEN, then GH_TOKEN, then `gh auth token` for the API's host. */
export async function resolveToken(sources: TokenSources, apiUrl: string): Promise<FoundToken | undefined> {
  const candidates: Array<[string | undefined, string]> = [
    [sources.flag, '--token'],
    [sources.env.GITHUB_TOKEN, 'GITHUB_TOKEN'],
    [sources.env.GH_TOKEN, 'GH_TOKEN'],
  ];
  for (const [value, from] of candidates) {
    const token = value?.trim();
    if (token) return { token, from };
  }
  const host = ghHost(apiUrl);
  const token = (await sources.gh(host))?.trim();
  return token ? { token, from: `gh auth token (${host})` } : undefined;
}

/** The host gh knows a server by: github.com for the public API, else the API URL's host. */
export function ghHost(apiUrl: string): string {
  const { hostname, host } = new URL(apiUrl);
  return hostname === 'api.github.com' ? 'github.com' : host;
}

/** Ask the gh CLI, if it is installed and logged in. */
export function ghAuthToken(host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('gh', ['auth', 'token', '--hostname', host], { timeout: 10_000, windowsHide: true }, (err, stdout) => {
      resolve(err ? undefined : stdout.trim() || undefined);
    });
  });
}
