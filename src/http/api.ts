import type { Context } from 'hono';
import type { JobView } from '../jobs/index.ts';
import type { AppDeps, Env } from './deps.ts';

/** GET /api/jobs: every job as the monitoring contract names it. */
export function jobsRoute(deps: AppDeps) {
  return (c: Context<Env>) => c.json({ jobs: deps.queue.list().map(apiJob) });
}

export function apiJob(job: JobView) {
  return {
    name: job.name,
    state: job.state,
    ip: job.ip,
    size: job.size,
    contentType: job.contentType,
    attempts: job.attempts,
    since: new Date(job.since).toISOString(),
    reports: job.reports,
    reason: job.reason,
  };
}
