/** Why a GitHub call failed, in the terms dispatch acts on. */
export type GitHubFailure =
  | 'auth' // 401: the token is wrong or expired
  | 'forbidden' // 403 without a rate limit: the token lacks a permission
  | 'not-found' // 404 (GitHub also hides private repositories this way)
  | 'gone' // 410: issues are disabled
  | 'validation' // 422
  | 'rate-limit' // 403/429 with a reset or retry-after
  | 'server' // 5xx and other statuses
  | 'network'; // no answer at all

export interface ValidationIssue {
  readonly field?: string;
  readonly code?: string;
  readonly value?: unknown;
}

/** The one error type of the GitHub boundary. Never carries the token. */
export class GitHubError extends Error {
  override name = 'GitHubError';
  readonly failure: GitHubFailure;
  readonly status: number | undefined;
  readonly validation: readonly ValidationIssue[];
  /** When GitHub says to come back, in ms from now. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    details: { failure: GitHubFailure; status?: number; validation?: readonly ValidationIssue[]; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, { cause: details.cause });
    this.failure = details.failure;
    this.status = details.status;
    this.validation = details.validation ?? [];
    this.retryAfterMs = details.retryAfterMs;
  }
}

interface OctokitLikeError {
  status?: number;
  message?: string;
  response?: { headers?: Record<string, string | number | undefined>; data?: unknown };
}

/** Turn whatever a GitHub call threw into a GitHubError, once, at the boundary. */
export function toGitHubError(err: unknown, what: string, now: () => number = Date.now): GitHubError {
  if (err instanceof GitHubError) return err;
  const e = (err ?? {}) as OctokitLikeError;
  const response = e.response;
  if (!response) {
    return new GitHubError(`${what}: cannot reach GitHub (${networkReason(err)})`, { failure: 'network', cause: err });
  }
  const status = e.status ?? 0;
  const headers = response.headers ?? {};
  const data = (response.data ?? {}) as { message?: string; errors?: ValidationIssue[] };
  const said = typeof data.message === 'string' ? data.message : (e.message ?? '');
  const retryAfter = Number(headers['retry-after']);
  const reset = Number(headers['x-ratelimit-reset']);
  const retryAfterMs = Number.isFinite(retryAfter) && retryAfter > 0
    ? retryAfter * 1000
    : String(headers['x-ratelimit-remaining']) === '0' && Number.isFinite(reset)
      ? Math.max(0, reset * 1000 - now()) + 1000
      : undefined;
  const rateLimited = (status === 403 || status === 429) && (retryAfterMs !== undefined || /rate limit/i.test(said));
  // GitHub: a secondary limit without retry-after means wait at least a minute.
  const wait = rateLimited && retryAfterMs === undefined ? 60_000 : retryAfterMs;
  const failure: GitHubFailure = rateLimited
    ? 'rate-limit'
    : status === 401 ? 'auth'
    : status === 403 ? 'forbidden'
    : status === 404 ? 'not-found'
    : status === 410 ? 'gone'
    : status === 422 ? 'validation'
    : 'server';
  return new GitHubError(`${what}: GitHub answered ${status}${said ? ` (${said})` : ''}`, {
    failure,
    status,
    validation: Array.isArray(data.errors) ? data.errors : [],
    ...(wait !== undefined ? { retryAfterMs: wait } : {}),
    cause: err,
  });
}

function networkReason(err: unknown): string {
  let cause: unknown = err;
  for (let depth = 0; depth < 5 && cause; depth += 1) {
    const code = (cause as { code?: string }).code;
    if (code) return code;
    cause = (cause as { cause?: unknown }).cause;
  }
  return err instanceof Error ? err.message : String(err);
}
