import type { JobState, JobView, QueueEvent } from '../jobs/index.ts';
import { iso } from './format.ts';

/** One job as the TUI shows it. */
export interface JobRow {
  readonly id: number;
  readonly name: string;
  readonly state: JobState;
  readonly ip: string | null;
  readonly size: number;
  /** When the job entered its state (ms). */
  readonly since: number;
  /** When its server was last heard from about it (ms), or null. */
  readonly lastSeen: number | null;
  /** Bytes of the current or last transfer. */
  readonly bytes: number;
  /** Bytes a second of the running transfer, or null. */
  readonly rate: number | null;
  readonly reports: readonly string[];
  readonly reason: string | null;
  readonly attempts: number;
}

export interface LabSnapshot {
  /** Every job, by id. */
  readonly rows: readonly JobRow[];
  readonly counts: Readonly<Record<JobState, number>>;
  /** Jobs that are over (finished, or failed with the failure filed), in the order they ended. */
  readonly finals: readonly JobRow[];
  /** The latest log lines, oldest first. */
  readonly messages: readonly string[];
  /** Times poweroff.efi was fetched. */
  readonly poweroffs: number;
}

/** What changed in a model since the last `takeChanges()`: enough for another model to follow it. */
export interface LabChanges {
  /** Jobs that ended, as they were when they ended, in the order they ended. */
  readonly ended: readonly JobRow[];
  /** The changed rows as they are now, each once. */
  readonly rows: readonly JobRow[];
  /** Log lines added, oldest first. */
  readonly messages: readonly string[];
  readonly poweroffs: number;
}

export const STATES: readonly JobState[] = ['unassigned', 'assigned', 'downloading', 'booting', 'reported', 'finished', 'failed'];

const MAX_MESSAGES = 50;

/**
 * What the TUI draws, folded from queue events. It decides nothing about
 * jobs; it only remembers what the events said, plus the transfer rate it
 * derives from progress samples. `version` moves on every change so a
 * renderer can skip frames where nothing happened.
 */
export class LabModel {
  readonly #rows: JobRow[] = [];
  readonly #finals: JobRow[] = [];
  readonly #ended = new Set<number>();
  readonly #messages: string[] = [];
  /** Last progress sample per job, for the rate. */
  readonly #samples = new Map<number, { at: number; bytes: number }>();
  #poweroffs = 0;
  /** Rows and lines since the last `takeChanges()`, and how many of `#finals` it gave. */
  readonly #changedRows = new Set<number>();
  #finalsTaken = 0;
  #newMessages: string[] = [];
  version = 0;

  constructor(jobs: readonly JobView[] = []) {
    this.load(jobs);
  }

  /** Every job as it is now (the queue's list once workloads are loaded). */
  load(jobs: readonly JobView[]): void {
    for (const job of jobs) this.#put(this.#fromView(job, null));
  }

  apply(event: QueueEvent): void {
    switch (event.kind) {
      case 'job': {
        const before = this.#rows[event.job.id];
        const moved = before?.state !== event.job.state;
        if (moved) this.#samples.delete(event.job.id);
        this.#put(this.#fromView(event.job, event.at, moved ? null : before?.rate ?? null));
        break;
      }
      case 'progress': {
        const row = this.#rows[event.id];
        if (!row) return;
        const last = this.#samples.get(event.id);
        const sample = last && event.at > last.at ? last : { at: event.startedAt, bytes: 0 };
        const seconds = (event.at - sample.at) / 1000;
        const instant = seconds > 0 ? (event.bytes - sample.bytes) / seconds : null;
        // Smooth: a loaded loopback jumps around from one 200 ms sample to the next.
        const rate = instant === null ? row.rate : row.rate === null ? instant : row.rate * 0.5 + instant * 0.5;
        this.#samples.set(event.id, { at: event.at, bytes: event.bytes });
        this.#put({ ...row, bytes: event.bytes, rate, lastSeen: event.at });
        break;
      }
      case 'poweroff':
        // The HEAD before it says nothing new.
        if (event.method !== 'GET') return;
        this.#poweroffs += 1;
        this.message(event.at, 'poweroff', `${event.ip} fetched poweroff.efi: nothing left to run`);
        break;
      case 'failed':
        break;
    }
  }

  /** A log line from a subsystem. */
  message(at: number, subsystem: string, text: string): void {
    this.#addMessage(`${iso(at).slice(11, 19)} ${subsystem}: ${text}`);
  }

  /** What changed since the last call, or undefined when nothing did. */
  takeChanges(): LabChanges | undefined {
    if (this.#changedRows.size === 0 && this.#newMessages.length === 0) return undefined;
    const ended = this.#finals.slice(this.#finalsTaken);
    this.#finalsTaken = this.#finals.length;
    const rows = [...this.#changedRows].map((id) => this.#rows[id]!);
    const changes = { ended, rows, messages: this.#newMessages, poweroffs: this.#poweroffs };
    this.#changedRows.clear();
    this.#newMessages = [];
    return changes;
  }

  /** Follow another model: apply what its `takeChanges()` gave, in order. */
  merge(changes: LabChanges): void {
    // The list of ended jobs keeps what they were when they ended, whatever happened to them since.
    for (const row of changes.ended) {
      if (this.#ended.has(row.id)) continue;
      this.#ended.add(row.id);
      this.#finals.push(row);
    }
    for (const row of changes.rows) this.#put(row);
    for (const line of changes.messages) this.#addMessage(line);
    if (changes.poweroffs !== this.#poweroffs) {
      this.#poweroffs = changes.poweroffs;
      this.version += 1;
    }
  }

  snapshot(): LabSnapshot {
    const counts = Object.fromEntries(STATES.map((state) => [state, 0])) as Record<JobState, number>;
    for (const row of this.#rows) counts[row.state] += 1;
    return { rows: [...this.#rows], counts, finals: [...this.#finals], messages: [...this.#messages], poweroffs: this.#poweroffs };
  }

  #addMessage(line: string): void {
    this.#messages.push(line);
    if (this.#messages.length > MAX_MESSAGES) this.#messages.shift();
    this.#newMessages.push(line);
    if (this.#newMessages.length > MAX_MESSAGES) this.#newMessages.shift();
    this.version += 1;
  }

  #put(row: JobRow): void {
    this.#rows[row.id] = row;
    this.#changedRows.add(row.id);
    this.version += 1;
    if (this.#ended.has(row.id) || !isOver(row)) return;
    this.#ended.add(row.id);
    this.#finals.push(row);
  }

  #fromView(job: JobView, at: number | null, rate: number | null = null): JobRow {
    const lastEntry = job.timeline[job.timeline.length - 1];
    return {
      id: job.id,
      name: job.name,
      state: job.state,
      ip: job.ip,
      size: job.size,
      since: job.since,
      lastSeen: at ?? lastEntry?.at ?? null,
      bytes: job.bytes,
      rate,
      reports: job.reports,
      reason: job.reason,
      attempts: job.attempts,
    };
  }
}

/** Over for the screen: nothing more will happen to it that the live table should show. */
export function isOver(row: JobRow): boolean {
  return row.state === 'finished' || (row.state === 'failed' && row.reports.length > 0);
}

/** The rows the live table shows, busiest first, at most `max` of them, and how many did not fit. */
export function liveRows(rows: readonly JobRow[], max: number): { readonly shown: readonly JobRow[]; readonly hidden: number; readonly waiting: number } {
  const order: Partial<Record<JobState, number>> = { downloading: 0, assigned: 1, booting: 2, reported: 3, failed: 4, unassigned: 5 };
  const buckets: JobRow[][] = [[], [], [], [], [], []];
  let waiting = 0;
  for (const row of rows) {
    if (isOver(row)) continue;
    const rank = order[row.state];
    if (rank === undefined) continue;
    if (row.state === 'unassigned') waiting += 1;
    buckets[rank]!.push(row);
  }
  const live = buckets.flat();
  const room = Math.max(0, max);
  if (live.length <= room) return { shown: live, hidden: 0, waiting };
  // Keep a line to say what did not fit.
  const shown = live.slice(0, Math.max(0, room - 1));
  return { shown, hidden: live.length - shown.length, waiting };
}
