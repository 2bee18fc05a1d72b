export { ghAuthToken, ghHost, resolveToken, TOKEN_HELP, type FoundToken, type TokenSources } from './auth.ts';
export { GitHub, type GitHubOptions, type IssueRef, type NewIssue, type Release, type ReleaseAsset } from './client.ts';
export { GitHubError, toGitHubError, type GitHubFailure, type ValidationIssue } from './errors.ts';
