import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { GitHubError, toGitHubError } from '../github/errors.ts';
import type { GitHub, IssueRef } from '../github/index.ts';
import type { Log } from '../log.ts';
import { issueMarker, linkMarker, partMarker, planIssue } from './issue.ts';
import type { Outbox, OutboxEntry } from './outbox.ts';
import type { Filing, ReportSink, StoredFiling } from './types.ts';

export interface GitHubSinkOptions {
  readonly github: GitHub;
  readonly outbox: Outbox;
  readonly log: Log;
  readonly now?: () => number;
  /** Longest wait between two tries when GitHub keeps failing. */
  readonly maxBackoffMs?: number;
}

interface Stored extends StoredFiling {
  readonly entry: OutboxEntry;
}

/**
 * Reports as GitHub issues, through the durable outbox: store() returns once
 * the report is on disk; file() keeps trying, one report at a time and in
 * order, until GitHub has it, and never files one twice (the marker).
 */
export class GitHubSink implements ReportSink {
  readonly description: string;
  readonly #options: GitHubSinkOptions;
  readonly #now: () => number;
  readonly #abort = new AbortController();
  /** GitHub writes go one at a time: that is what its secondary limits ask for. */
  #chain: Promise<unknown> = Promise.resolve();
  #milestones: Promise<Map<string, number>> | undefined;
  /** Entries this process stored: already on their way, never "from an earlier run". */
  readonly #ours = new Set<string>();

  constructor(options: GitHubSinkOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.description = `issues in ${options.github.describe()} (outbox ${options.outbox.dir})`;
  }

  async store(filing: Filing): Promise<StoredFiling> {
    // Known as ours before its file can be seen by recover().
    const id = randomUUID();
    this.#ours.add(id);
    const entry = await this.#options.outbox.add(filing, this.#now(), id);
    const stored: Stored = { filing, ref: this.#options.outbox.path(entry), entry };
    return stored;
  }

  /** Reports an earlier run acknowledged but did not file. */
  async recover(): Promise<StoredFiling[]> {
    const entries = (await this.#options.outbox.pending((file, reason) => this.#options.log('report', `cannot read outbox entry ${file}: ${reason}; left in place`)))
      // A failure stored by a timer that ran out during the start is being filed already: filing it twice could post it twice.
      .filter((entry) => !this.#ours.has(entry.id));
    return entries.map((entry): Stored => ({ filing: entry.filing, ref: this.#options.outbox.path(entry), entry }));
  }

  async whereFiled(ref: string): Promise<string | undefined> {
    return (await this.#options.outbox.filed(ref))?.issue?.url;
  }

  file(stored: StoredFiling): Promise<string> {
    const { entry } = stored as Stored;
    const result = this.#chain.then(() => this.#fileWithRetries(entry));
    this.#chain = result.catch(() => undefined);
    return result;
  }

  /** Stop trying; what is not filed stays in the outbox for the next start. */
  close(): void {
    this.#abort.abort();
    this.#options.github.close();
  }

  async #fileWithRetries(entry: OutboxEntry): Promise<string> {
    const { log } = this.#options;
    const maxBackoff = this.#options.maxBackoffMs ?? 5 * 60_000;
    for (let failures = 0; ; failures += 1) {
      this.#abort.signal.throwIfAborted();
      try {
        const url = await this.#fileOnce(entry);
        await this.#options.outbox.complete(entry, this.#now());
        return url;
      } catch (err) {
        if (this.#abort.signal.aborted) throw err;
        const error = err instanceof GitHubError ? err : toGitHubError(err, 'filing');
        const backoff = Math.min(maxBackoff, 1_000 * 2 ** Math.min(failures, 16));
        const wait = Math.max(error.retryAfterMs ?? 0, backoff);
        log('report', `filing ${JSON.stringify(entry.filing.report.title)} (${entry.filing.job.name}) failed: ${error.message}; trying again in ${Math.ceil(wait / 1000)}s`);
        await sleep(wait, undefined, { signal: this.#abort.signal });
      }
    }
  }

  async #fileOnce(entry: OutboxEntry): Promise<string> {
    const { github, outbox } = this.#options;
    if (!entry.issue && entry.attempts > 0) {
      // An earlier try may have created the issue and died before hearing so.
      const found = await github.findIssue(issueMarker(entry.id), entry.createdAt).catch((err: unknown) => {
        // An API without the listing (a minimal GitHub-compatible server, a
        // token that may not list) must not keep the report from being filed;
        // passing trouble (5xx, network, rate limits) is retried instead.
        if (cannotList(err)) {
          this.#options.log('report', `cannot look for an earlier copy of ${JSON.stringify(entry.filing.report.title)} (${err.message}); filing it`);
          return undefined;
        }
        throw err;
      });
      if (found) {
        this.#options.log('report', `${JSON.stringify(entry.filing.report.title)} was already filed as ${found.url}; not filing it again`);
        entry.issue = found;
        await outbox.save(entry);
      }
    }
    if (!entry.issue) {
      entry.attempts += 1;
      await outbox.save(entry);
      entry.issue = await this.#create(entry);
      await outbox.save(entry);
    }
    const issue: IssueRef = entry.issue;
    const { comments } = planIssue(entry.filing, entry.id, []);
    while (entry.comments < comments.length) {
      const part = entry.comments + 2;
      if (entry.commentAttempts > 0) {
        // As for the issue: a listing that is not there (404) must not hold the report back.
        const bodies = await github.commentBodies(issue.number).catch((err: unknown) => {
          if (cannotList(err)) return [];
          throw err;
        });
        if (bodies.some((b) => b.includes(partMarker(entry.id, part)))) {
          entry.comments += 1;
          entry.commentAttempts = 0;
          await outbox.save(entry);
          continue;
        }
      }
      entry.commentAttempts += 1;
      await outbox.save(entry);
      await github.createComment(issue.number, comments[entry.comments]!);
      entry.comments += 1;
      entry.commentAttempts = 0;
      await outbox.save(entry);
    }
    if (entry.filing.late && !entry.linked) await this.#linkFromFailure(entry, issue);
    this.#options.log('report', `filed ${JSON.stringify(entry.filing.report.title)} (${entry.filing.job.name}, ${entry.filing.job.ip ?? 'no server'}) as ${issue.url}${comments.length > 0 ? ` with ${comments.length} comment(s)` : ''}`);
    return issue.url;
  }

  /**
   * Rule 4: a report that came after its job timed out is named in a comment
   * on the failure issue. Reports are filed one at a time in the order they
   * were stored, so the failure (stored first) is filed by now.
   */
  async #linkFromFailure(entry: OutboxEntry, late: IssueRef): Promise<void> {
    const { github, outbox, log } = this.#options;
    const link = entry.filing.late!;
    const failure = link.failureKey === null ? undefined : (await outbox.filed(link.failureKey))?.issue;
    if (!failure) {
      log('report', `the late report ${JSON.stringify(entry.filing.report.title)} is filed as ${late.url}, but its failure issue is not known: not linked from it`);
    } else {
      const marker = linkMarker(entry.id);
      let posted = false;
      if ((entry.linkAttempts ?? 0) > 0) {
        const bodies = await github.commentBodies(failure.number).catch((err: unknown) => {
          if (cannotList(err)) return [];
          throw err;
        });
        posted = bodies.some((b) => b.includes(marker));
      }
      if (!posted) {
        entry.linkAttempts = (entry.linkAttempts ?? 0) + 1;
        await outbox.save(entry);
        const title = JSON.stringify(entry.filing.report.title);
        await github.createComment(failure.number, `**dispatch:** a report came from \`${entry.filing.job.ip ?? 'the server'}\` after this job had timed out: ${title}, filed as ${late.url}.\n\n${marker}`);
      }
    }
    entry.linked = true;
    await outbox.save(entry);
  }

  /** Create the issue; a milestone or assignees GitHub will not take are dropped, and the issue says so. */
  async #create(entry: OutboxEntry): Promise<IssueRef> {
    const { github } = this.#options;
    const { report } = entry.filing;
    const where = `${github.owner}/${github.repo}`;
    const notes: string[] = [];
    let milestone: number | null = null;
    if (report.milestone !== null) {
      try {
        milestone = (await this.#milestone(report.milestone)) ?? null;
        if (milestone === null) notes.push(`there is no milestone ${JSON.stringify(report.milestone)} in ${where}: filed without a milestone.`);
      } catch (err) {
        // Passing trouble is retried; a listing GitHub will not give us never comes, and must not hold the report back.
        if (!cannotList(err)) throw err;
        notes.push(`could not look up milestone ${JSON.stringify(report.milestone)} in ${where} (${err.message}): filed without a milestone.`);
      }
    }
    let assignees = [...report.assignees];
    let labels = [...report.labels];
    for (;;) {
      const plan = planIssue(entry.filing, entry.id, notes);
      try {
        return await github.createIssue({ title: plan.title, body: plan.body, labels, assignees, milestone });
      } catch (err) {
        const error = err instanceof GitHubError ? err : toGitHubError(err, 'creating an issue');
        if (error.failure !== 'validation') throw error;
        const fields = new Set(error.validation.map((v) => v.field));
        if (fields.has('assignees') && assignees.length > 0) {
          notes.push(`GitHub would not assign ${assignees.map((a) => `@\u200b${a}`).join(', ')} in ${where}: filed without assignees.`);
          assignees = [];
        } else if (fields.has('milestone') && milestone !== null) {
          notes.push(`GitHub would not take milestone ${JSON.stringify(report.milestone)}: filed without a milestone.`);
          milestone = null;
          this.#milestones = undefined;
        } else if (labels.length > 0 || assignees.length > 0 || milestone !== null) {
          // Whatever else GitHub refused, the report itself must get through.
          notes.push(`GitHub refused this issue's labels, assignees or milestone (${error.message}): filed without them. They were: labels ${JSON.stringify(report.labels)}, assignees ${JSON.stringify(report.assignees)}, milestone ${JSON.stringify(report.milestone)}.`);
          labels = [];
          assignees = [];
          milestone = null;
        } else {
          throw error;
        }
      }
    }
  }

  /** A milestone's number by title; the list is fetched once and again when a title is missing. */
  async #milestone(title: string): Promise<number | undefined> {
    const cached = this.#milestones;
    if (cached) {
      const known = await cached.catch(() => new Map<string, number>());
      if (known.has(title)) return known.get(title);
    }
    const fresh = this.#options.github.milestones();
    this.#milestones = fresh;
    // A failed lookup is not remembered: the next filing asks again.
    fresh.catch(() => {
      if (this.#milestones === fresh) this.#milestones = undefined;
    });
    return (await fresh).get(title);
  }
}

/** The answer says this listing will never be given (missing, forbidden, not implemented), as opposed to passing trouble. */
function cannotList(err: unknown): err is GitHubError {
  return err instanceof GitHubError && (err.failure === 'not-found' || err.failure === 'forbidden' || err.status === 405 || err.status === 501);
}
