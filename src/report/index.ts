export type { Filing, LateLink, Report, ReportSink, StoredFiling } from './types.ts';
export { ReportError } from './types.ts';
export { parseReport, type Validated } from './validate.ts';
export { failureReport, renderMarkdown } from './markdown.ts';
export { checkReportDirectory, directorySink } from './directory.ts';
export { Reporter, type ReporterOptions } from './reporter.ts';
export { GitHubSink, type GitHubSinkOptions } from './github.ts';
export { Outbox, type FiledRecord, type OutboxEntry } from './outbox.ts';
export { GITHUB_BODY_LIMIT, issueMarker, linkMarker, partMarker, planIssue, splitBody, type IssuePlan } from './issue.ts';
