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

const STATES = ['unassigned', 'assigned', 'downloading', 'booting', 'reported', 'finished', 'failed'] as const;

/** GET /metrics: Prometheus text exposition (format 0.0.4), from the same picture as /api/jobs. */
export function metricsRoute(deps: AppDeps) {
  return (c: Context<Env>) => {
    const jobs = deps.queue.list();
    const count = (pick: (job: JobView) => number) => jobs.reduce((sum, job) => sum + pick(job), 0);
    const lines = [
      '# HELP dispatch_jobs Jobs by state.',
      '# TYPE dispatch_jobs gauge',
      ...STATES.map((state) => `dispatch_jobs{state="${state}"} ${count((job) => (job.state === state ? 1 : 0))}`),
      '# HELP dispatch_download_attempts_total Downloads started (resumed ones included).',
      '# TYPE dispatch_download_attempts_total counter',
      `dispatch_download_attempts_total ${count((job) => job.attempts)}`,
      '# HELP dispatch_downloads_broken_total Downloads that ended before the last byte.',
      '# TYPE dispatch_downloads_broken_total counter',
      `dispatch_downloads_broken_total ${count((job) => job.broken)}`,
      '# HELP dispatch_filed_total Reports and failure reports filed (issues or files).',
      '# TYPE dispatch_filed_total counter',
      `dispatch_filed_total ${count((job) => job.reports.length)}`,
    ];
    return c.text(`${lines.join('\n')}\n`, 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
  };
}
