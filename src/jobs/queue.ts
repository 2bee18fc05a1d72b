import { assign, createActor, type Actor, type Snapshot } from 'xstate';
import type { Workload } from '../source/index.ts';
import type { Clock } from './clock.ts';
import { jobMachine, type JobContext, type JobEvent, type JobState } from './machine.ts';

export interface TimelineEntry {
  readonly at: number;
  readonly what: string;
  readonly ip: string | null;
}

/** A read-only picture of one job, for the API, the UI and reports. */
export interface JobView {
  readonly id: number;
  readonly name: string;
  readonly state: JobState;
  readonly ip: string | null;
  readonly size: number;
  readonly contentType: Workload['contentType'];
  readonly attempts: number;
  readonly broken: number;
  /** When the job entered its current state (clock ms). */
  readonly since: number;
  /** Where its reports went: issue URLs or report files. */
  readonly reports: readonly string[];
  readonly reason: string | null;
  /** Bytes the current or last transfer has sent. */
  readonly bytes: number;
  readonly timeline: readonly TimelineEntry[];
  /** Timeline entries dropped to keep the list capped. */
  readonly dropped: number;
}

export type QueueEvent =
  | { readonly kind: 'job'; readonly at: number; readonly job: JobView; readonly what: string }
  /** A job just failed; its failure report is due. */
  | { readonly kind: 'failed'; readonly at: number; readonly job: JobView }
  | { readonly kind: 'poweroff'; readonly at: number; readonly ip: string; readonly method: 'HEAD' | 'GET'; readonly what: string }
  /** A transfer moved on; sent at most every PROGRESS_EVENT_MS per transfer, and not logged as a line. */
  | { readonly kind: 'progress'; readonly at: number; readonly id: number; readonly ip: string; readonly bytes: number; readonly size: number; readonly startedAt: number };

/** What a server's HEAD or GET is answered with. */
export type Claim =
  | { readonly kind: 'job'; readonly id: number; readonly workload: Workload }
  | { readonly kind: 'poweroff' }
  | { readonly kind: 'none' };

/** A running transfer of a job's bytes to the server that holds it. */
export interface Transfer {
  /** Total bytes sent so far in this transfer. */
  progress(bytes: number): void;
  /** The transfer ended; `delivered` when every byte it promised reached the socket. */
  end(delivered: boolean): void;
  /** The bytes can never be served (they failed verification): the job fails. */
  fail(reason: string): void;
}

export interface QueueOptions {
  readonly clock: Clock;
  /** Rule 2: Assigned/Downloading without progress for this long goes back to the pool. */
  readonly downloadTimeoutMs: number;
  /** Rule 4: Booting for this long fails the job (default 60 min). */
  readonly runTimeoutMs?: number;
  /** The run timeout as the user wrote it, for the failure reason ("timed out after 90m"). */
  readonly runTimeoutLabel?: string;
  /** Cap on each job's timeline. */
  readonly maxTimeline?: number;
  /** Names this run in its saved state and in its reports (a resumed run keeps the saved one). */
  readonly run?: string;
  /** A saved picture of this queue (`persist()`) to continue from, as `--resume` does. */
  readonly restore?: QueueState;
}

/** One job as saved: the machine's persisted snapshot and what the queue keeps beside it. */
export interface SavedJob {
  readonly name: string;
  readonly snapshot: Snapshot<unknown>;
  readonly since: number;
  readonly reports: readonly string[];
  readonly timeline: readonly TimelineEntry[];
  readonly dropped: number;
  /** Keys (where the sink stored them) of reports acknowledged but not yet filed. */
  readonly unfiled: readonly string[];
  /** Where the failure report was stored, and where it was filed. */
  readonly failure: { readonly key: string | null; readonly ref: string | null };
}

/** Everything needed to continue a run after a restart: plain JSON. */
export interface QueueState {
  readonly version: 1;
  readonly run: string;
  readonly savedAt: number;
  readonly jobs: readonly SavedJob[];
  readonly pool: readonly number[];
  /** Which job each server took last: [ip, job id]. */
  readonly held: ReadonlyArray<readonly [string, number]>;
  readonly poweredOff: readonly string[];
}

/** A report acknowledged for a job, as the queue took it. */
export interface Accepted {
  /** It came after the job had failed by the run timeout (rule 4). */
  readonly late: boolean;
}

type JobActor = Actor<typeof jobMachine>;

interface Job {
  readonly id: number;
  readonly workload: Workload;
  readonly actor: JobActor;
  state: JobState;
  /** The server that held the job at the last snapshot (the machine clears it on release). */
  heldBy: string | null;
  since: number;
  bytes: number;
  lastProgressAt: number;
  readonly reports: string[];
  readonly timeline: TimelineEntry[];
  dropped: number;
  /** Keys of acknowledged reports not filed yet (the machine only counts them). */
  readonly unfiled: string[];
  failure: { key: string | null; ref: string | null };
  /** This job's part of the saved state as last serialized, and what it was made from. */
  saved?: SavedPart;
}

/** What a job's saved part depends on: while all of it is the same, the text is too. */
interface SavedPart {
  readonly snapshot: unknown;
  readonly since: number;
  readonly timeline: number;
  readonly dropped: number;
  readonly reports: number;
  readonly unfiled: string;
  readonly failureKey: string | null;
  readonly failureRef: string | null;
  readonly text: string;
}

/** Progress events are coalesced: the no-progress timer needs no finer grain than this (or a quarter of a short timeout). */
const PROGRESS_EVERY_MS = 1_000;
/** Progress events for watchers (the TUI redraws at most 10 times a second; finer would be wasted). */
const PROGRESS_EVENT_MS = 200;

/**
 * The lab's jobs, in workload name order, and which server holds which.
 * Pure: no sockets, no files; time comes from the injected clock. HTTP calls
 * in, the UI and the reporters subscribe to its events.
 */
export class Queue {
  /** This run's name: saved with its state and carried by its reports. */
  readonly run: string;
  readonly #clock: Clock;
  readonly #maxTimeline: number;
  readonly #progressEveryMs: number;
  readonly #jobs: Job[] = [];
  /** Unassigned job ids, ascending: the next job is always the first. */
  readonly #pool: number[] = [];
  /** The latest job each server took (rule 1 stickiness, rule 6 report target). */
  readonly #byIp = new Map<string, Job>();
  /** Servers whose last answer was poweroff.efi, so a resumed poweroff download stays one. */
  readonly #poweredOff = new Set<string>();
  readonly #listeners = new Set<(event: QueueEvent) => void>();
  readonly #changeListeners = new Set<() => void>();
  /** Jobs and servers changed since the last `changesJson()`: what the next journal entry holds. */
  readonly #dirtyJobs = new Set<Job>();
  readonly #dirtyServers = new Set<string>();
  /** Inside #send: transitions are told from there, not from #observe. */
  #sending = false;

  constructor(workloads: readonly Workload[], options: QueueOptions) {
    this.#clock = options.clock;
    this.#maxTimeline = options.maxTimeline ?? 100;
    this.#progressEveryMs = Math.min(PROGRESS_EVERY_MS, options.downloadTimeoutMs / 4);
    const runTimeoutMs = options.runTimeoutMs ?? 60 * 60_000;
    const label = options.runTimeoutLabel ?? humanise(runTimeoutMs);
    const clock = this.#clock;
    const machine = jobMachine.provide({
      delays: {
        downloadTimeout: options.downloadTimeoutMs,
        // What is left since the first `beacon boot`: a resumed run keeps counting from then.
        runTimeout: ({ context }) => Math.max(0, (context.bootedAt ?? clock.now()) + runTimeoutMs - clock.now()),
      },
      actions: { timedOut: assign({ reason: `timed out after ${label}`, timedOut: true }) },
    });
    const saved = options.restore;
    this.run = saved?.run ?? options.run ?? 'run';
    if (saved && (saved.jobs.length !== workloads.length || saved.jobs.some((job, id) => job.name !== workloads[id]!.name))) {
      throw new Error('the saved run has other workloads than this one');
    }
    const now = this.#clock.now();
    workloads.forEach((workload, id) => {
      const before = saved?.jobs[id];
      const actor = before
        ? createActor(machine, { clock: this.#clock, snapshot: before.snapshot as never })
        : createActor(machine, { clock: this.#clock });
      const job: Job = {
        id,
        workload,
        actor,
        state: 'unassigned',
        heldBy: null,
        since: before?.since ?? now,
        bytes: 0,
        lastProgressAt: 0,
        reports: [...(before?.reports ?? [])],
        timeline: [...(before?.timeline ?? [])],
        dropped: before?.dropped ?? 0,
        unfiled: [...(before?.unfiled ?? [])],
        failure: { ...(before?.failure ?? { key: null, ref: null }) },
      };
      const snapshot = actor.getSnapshot();
      job.state = snapshot.value as JobState;
      job.heldBy = snapshot.context.ip;
      this.#jobs.push(job);
      actor.subscribe((next) => this.#observe(job, next.value as JobState, next.context));
      actor.start();
    });
    if (!saved) {
      this.#pool.push(...this.#jobs.map((job) => job.id));
      return;
    }
    this.#pool.push(...saved.pool.filter((id) => this.#jobs[id] !== undefined));
    for (const [ip, id] of saved.held) if (this.#jobs[id]) this.#byIp.set(ip, this.#jobs[id]);
    for (const ip of saved.poweredOff) this.#poweredOff.add(ip);
    // Timers are not in a snapshot: booting jobs re-arm what is left of their
    // run timeout. A job being fetched stays its server's for one more
    // download timeout: the firmware retries, or resumes with a Range, and
    // must get the same bytes HEAD announced (rule 1); if it never comes
    // back, rule 2 puts the job back in the pool.
    for (const job of this.#jobs) {
      const { state } = job;
      const { ip } = this.#context(job);
      if (state === 'assigned' || state === 'downloading') {
        this.#note(job, `dispatch restarted: still ${ip ?? 'its server'}'s until the download timeout, for its firmware to retry`, ip);
        job.actor.send({ type: 'resume' });
      } else if (state === 'booting') {
        this.#note(job, 'dispatch restarted: still booting; the run timeout counts from the first boot', ip);
        job.actor.send({ type: 'resume' });
      } else if (state === 'reported') {
        this.#note(job, 'dispatch restarted: finishes once its reports are filed', ip);
      }
    }
  }

  /** Servers whose last answer was poweroff.efi (rule 8 waits for them; a resumed run remembers them). */
  poweredOff(): readonly string[] {
    return [...this.#poweredOff];
  }

  /** Listen for changes worth saving (every transition; never mere progress). */
  onChange(listener: () => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /** The queue as plain JSON, to save and give back as `restore` after a restart. */
  persist(): QueueState {
    return {
      version: 1,
      run: this.run,
      savedAt: this.#clock.now(),
      jobs: this.#jobs.map((job) => this.#savedJob(job)),
      pool: [...this.#pool],
      held: [...this.#byIp].map(([ip, job]) => [ip, job.id] as const),
      poweredOff: [...this.#poweredOff],
    };
  }

  /**
   * `persist()` as JSON text, for the state writer. It runs after every
   * transition, so each job's part is serialized again only when that job
   * changed: a thousand jobs cost one string join, not a thousand snapshots.
   */
  persistJson(): string {
    const jobs = this.#jobs.map((job) => this.#savedText(job)).join(',');
    const held = [...this.#byIp].map(([ip, job]) => [ip, job.id]);
    return `{"version":1,"run":${JSON.stringify(this.run)},"savedAt":${this.#clock.now()},"jobs":[${jobs}],"pool":${JSON.stringify(this.#pool)},"held":${JSON.stringify(held)},"poweredOff":${JSON.stringify([...this.#poweredOff])}}`;
  }

  /**
   * What changed since the last call, as one JSON text for the state
   * journal (`replayChanges` applies it to a saved picture), or undefined
   * when nothing did. Each changed job's whole part, each changed server's
   * hold: the cost follows what changed, never the number of jobs.
   */
  changesJson(): string | undefined {
    if (this.#dirtyJobs.size === 0 && this.#dirtyServers.size === 0) return undefined;
    const jobs = [...this.#dirtyJobs].map((job) => `[${job.id},${this.#savedText(job)}]`).join(',');
    const servers = [...this.#dirtyServers].map((ip) => JSON.stringify([ip, this.#byIp.get(ip)?.id ?? null, this.#poweredOff.has(ip)])).join(',');
    this.#dirtyJobs.clear();
    this.#dirtyServers.clear();
    return `{"savedAt":${this.#clock.now()},"jobs":[${jobs}],"servers":[${servers}]}`;
  }

  #savedJob(job: Job): QueueState['jobs'][number] {
    return {
      name: job.workload.name,
      snapshot: running(job.actor.getPersistedSnapshot()),
      since: job.since,
      reports: [...job.reports],
      timeline: [...job.timeline],
      dropped: job.dropped,
      unfiled: [...job.unfiled],
      failure: { ...job.failure },
    };
  }

  #savedText(job: Job): string {
    const snapshot = job.actor.getSnapshot();
    const unfiled = job.unfiled.join('\n');
    const last = job.saved;
    if (
      last !== undefined &&
      last.snapshot === snapshot &&
      last.since === job.since &&
      last.timeline === job.timeline.length &&
      last.dropped === job.dropped &&
      last.reports === job.reports.length &&
      last.unfiled === unfiled &&
      last.failureKey === job.failure.key &&
      last.failureRef === job.failure.ref
    ) {
      return last.text;
    }
    const text = JSON.stringify(this.#savedJob(job));
    job.saved = { snapshot, since: job.since, timeline: job.timeline.length, dropped: job.dropped, reports: job.reports.length, unfiled, failureKey: job.failure.key, failureRef: job.failure.ref, text };
    return text;
  }


  subscribe(listener: (event: QueueEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  list(): JobView[] {
    return this.#jobs.map((job) => this.#view(job));
  }

  get(id: number): JobView | undefined {
    const job = this.#jobs[id];
    return job && this.#view(job);
  }

  /**
   * A HEAD or a plain GET: which workload this server boots next. A retry gets
   * the same job (rule 1); a server that comes back after a full download
   * without reporting fails that job first (rule 3); nothing left → poweroff.
   */
  claim(ip: string, method: 'HEAD' | 'GET'): Claim {
    const held = this.#byIp.get(ip);
    if (held) {
      const { state } = held;
      const { transferred } = this.#context(held);
      if (state === 'assigned' || (state === 'downloading' && !transferred)) {
        // HEAD then GET is the normal pair; anything else is the firmware retrying.
        if (method === 'HEAD' || state === 'downloading') {
          this.#note(held, `${method} again: same job (rule 1)`, ip);
          this.#changed(held);
        }
        return this.#claimOf(held);
      }
      if (state === 'downloading' || state === 'booting') {
        this.#send(held, { type: 'fail', reason: 'rebooted without report' }, `failed: rebooted without report (${method} for a new workload)`, ip);
      }
    }
    const next = this.#pool.shift();
    if (next === undefined) {
      if (!this.#poweredOff.has(ip)) {
        this.#poweredOff.add(ip);
        this.#dirtyServers.add(ip);
        this.#changed();
      }
      this.#emit({ kind: 'poweroff', at: this.#clock.now(), ip, method, what: `${method} poweroff.efi: nothing left to run` });
      return { kind: 'poweroff' };
    }
    const job = this.#jobs[next]!;
    this.#poweredOff.delete(ip);
    this.#byIp.set(ip, job);
    this.#dirtyServers.add(ip);
    this.#send(job, { type: 'assign', ip }, `assigned to ${ip} (${method})`, ip);
    return this.#claimOf(job);
  }

  /**
   * A GET with a Range resumes a broken transfer: only ever the bytes of what
   * this server was already downloading, never a new job.
   */
  claimRange(ip: string): Claim {
    const held = this.#byIp.get(ip);
    if (held) {
      const { state } = held;
      if (state === 'assigned' || state === 'downloading') return this.#claimOf(held);
    }
    // With nothing left to hand out, poweroff.efi is all this server could have been fetching.
    return this.#poweredOff.has(ip) || this.#pool.length === 0 ? { kind: 'poweroff' } : { kind: 'none' };
  }

  /** Bytes of job `id` start flowing to `ip`; `reachesEnd` when the last byte is among them. */
  beginTransfer(id: number, ip: string, detail: { readonly reachesEnd: boolean; readonly range?: string }): Transfer {
    const job = this.#jobs[id]!;
    job.bytes = 0;
    const startedAt = this.#clock.now();
    job.lastProgressAt = startedAt;
    let lastEventAt = startedAt;
    const attempt = this.#context(job).attempts + 1;
    this.#send(job, { type: 'download.start' }, `download started${detail.range ? ` (${detail.range})` : ''}, attempt ${attempt}`, ip);
    let ended = false;
    // A transfer that outlived its job's hold (timed out, handed on) must not move the job.
    const stillHolds = () => job.state === 'downloading' && this.#context(job).ip === ip;
    return {
      progress: (bytes) => {
        job.bytes = bytes;
        const now = this.#clock.now();
        if (now - lastEventAt >= PROGRESS_EVENT_MS && this.#listeners.size > 0) {
          lastEventAt = now;
          this.#emit({ kind: 'progress', at: now, id, ip, bytes, size: job.workload.size, startedAt });
        }
        if (now - job.lastProgressAt < this.#progressEveryMs || !stillHolds()) return;
        job.lastProgressAt = now;
        job.actor.send({ type: 'download.progress' });
      },
      end: (delivered) => {
        if (ended) return;
        ended = true;
        if (!stillHolds()) return;
        if (!delivered) {
          this.#send(job, { type: 'download.broken' }, `download broken after ${job.bytes} bytes`, ip);
        } else if (detail.reachesEnd) {
          this.#send(job, { type: 'download.done' }, `download complete (${job.bytes} bytes)`, ip);
        } else {
          job.actor.send({ type: 'download.progress' });
        }
      },
      fail: (reason) => {
        if (ended) return;
        ended = true;
        if (!stillHolds()) return;
        this.#send(job, { type: 'fail', reason }, `failed: ${reason}`, ip);
      },
    };
  }

  /** `beacon boot`: the workload is running. Undefined when this server holds nothing bootable (417). */
  boot(ip: string): JobView | undefined {
    const held = this.#byIp.get(ip);
    if (!held) return undefined;
    const { state } = held;
    if (state !== 'downloading' && state !== 'booting') return undefined;
    this.#send(held, { type: 'boot', at: this.#clock.now() }, state === 'booting' ? 'booting (again)' : 'booting', ip);
    return this.#view(held);
  }

  /**
   * The job a report from `ip` belongs to (rule 6), or undefined (417). A job
   * its server ran past the run timeout still takes that server's reports:
   * late, but the lab wants them (rule 4).
   */
  reportTarget(ip: string): number | undefined {
    const held = this.#byIp.get(ip);
    if (!held) return undefined;
    const { state } = held;
    const { timedOut } = this.#context(held);
    return state === 'booting' || state === 'reported' || state === 'finished' || (state === 'failed' && timedOut) ? held.id : undefined;
  }

  /**
   * A report for job `id` is durably stored (at `key`, the sink's name for
   * it) and acknowledged. A job failed by the run timeout takes it as late:
   * it stays failed.
   */
  reportAccepted(id: number, title: string, key?: string): Accepted {
    const job = this.#jobs[id]!;
    const { state } = job;
    const { ip, timedOut } = this.#context(job);
    if (key !== undefined && job.unfiled.includes(key)) return { late: state === 'failed' };
    // Only a restart squaring a stored report with the queue can ask this of a job that takes no reports.
    if (!(state === 'booting' || state === 'reported' || state === 'finished' || (state === 'failed' && timedOut))) return { late: false };
    job.unfiled.push(key ?? `#${job.unfiled.length}`);
    if (state === 'failed') {
      this.#note(job, `late report accepted (after the run timeout): ${JSON.stringify(title)}`, ip);
      this.#emit({ kind: 'job', at: this.#clock.now(), job: this.#view(job), what: `late report accepted: ${JSON.stringify(title)}` });
      this.#changed(job);
      return { late: true };
    }
    this.#send(job, { type: 'report' }, `report accepted: ${JSON.stringify(title)}`, ip);
    this.#changed(job);
    return { late: false };
  }

  /** A report of job `id` has been filed at `ref` (rule 7: the last one finishes the job). */
  reportFiled(id: number, ref: string, key?: string): void {
    const job = this.#jobs[id]!;
    const at = key === undefined ? 0 : job.unfiled.indexOf(key);
    if (at === -1) return;
    job.unfiled.splice(at, 1);
    job.reports.push(ref);
    const { state } = job;
    const { ip } = this.#context(job);
    if (state === 'failed') {
      this.#note(job, `late report filed: ${ref}`, ip);
      this.#emit({ kind: 'job', at: this.#clock.now(), job: this.#view(job), what: `late report filed: ${ref}` });
    } else {
      this.#send(job, { type: 'report.filed' }, `report filed: ${ref}`, ip);
    }
    this.#changed(job);
  }

  /** Keys of job `id`'s acknowledged reports that are not filed yet. */
  unfiled(id: number): readonly string[] {
    return [...(this.#jobs[id]?.unfiled ?? [])];
  }

  /** Where job `id`'s failure report is stored and filed (nulls until it is). */
  failure(id: number): { readonly key: string | null; readonly ref: string | null } {
    const job = this.#jobs[id];
    return job ? { ...job.failure } : { key: null, ref: null };
  }

  /** The failure report of a failed job is stored at `key` (filing follows). */
  failureStored(id: number, key: string): void {
    const job = this.#jobs[id]!;
    job.failure.key = key;
    this.#changed(job);
  }

  /** The failure report of a failed job has been filed at `ref`. */
  failureFiled(id: number, ref: string): void {
    const job = this.#jobs[id]!;
    if (job.failure.ref === ref) return;
    job.failure.ref = ref;
    job.reports.push(ref);
    this.#note(job, `failure report filed: ${ref}`, this.#context(job).ip);
    this.#emit({ kind: 'job', at: this.#clock.now(), job: this.#view(job), what: `failure report filed: ${ref}` });
    this.#changed(job);
  }

  /** Stop every job's timers. */
  stop(): void {
    for (const job of this.#jobs) job.actor.stop();
  }

  #claimOf(job: Job): Claim {
    return { kind: 'job', id: job.id, workload: job.workload };
  }

  /** The machine's context (its state is `job.state`, kept by #observe): read in place, never copied. */
  #context(job: Job): JobContext {
    return job.actor.getSnapshot().context;
  }

  /** Send an event and, when it changed anything, tell the subscribers. */
  #send(job: Job, event: JobEvent, what: string, ip: string | null): void {
    const before = job.actor.getSnapshot();
    this.#sending = true;
    try {
      job.actor.send(event);
    } finally {
      this.#sending = false;
    }
    const after = job.actor.getSnapshot();
    if (after === before) return;
    this.#note(job, what, ip);
    this.#emit({ kind: 'job', at: this.#clock.now(), job: this.#view(job), what });
    if (after.value === 'failed' && before.value !== 'failed') {
      this.#emit({ kind: 'failed', at: this.#clock.now(), job: this.#view(job) });
    }
    this.#changed(job);
  }

  /** Every snapshot passes here, including ones the machine makes itself (timeouts). */
  #observe(job: Job, state: JobState, context: JobContext): void {
    const previousIp = job.heldBy;
    job.heldBy = context.ip;
    if (state === job.state) return;
    const from = job.state;
    job.state = state;
    job.since = this.#clock.now();
    if (state === 'unassigned' && (from === 'assigned' || from === 'downloading')) {
      // Rule 2: the hold lapsed (a restart re-arms it); the job is anyone's again, first in line by name.
      if (previousIp !== null && this.#byIp.get(previousIp) === job) {
        this.#byIp.delete(previousIp);
        this.#dirtyServers.add(previousIp);
      }
      this.#returnToPool(job.id);
    }
    // #send tells its own transitions; the rest are the machine's timers.
    if (this.#sending) return;
    let what: string | undefined;
    if (state === 'unassigned') what = `back to the pool: no progress from ${previousIp ?? 'its server'} in time`;
    else if (state === 'failed') what = `failed: ${context.reason ?? 'unknown reason'}`;
    if (what !== undefined) {
      this.#note(job, what, previousIp);
      this.#emit({ kind: 'job', at: this.#clock.now(), job: this.#view(job), what });
    }
    if (state === 'failed') this.#emit({ kind: 'failed', at: this.#clock.now(), job: this.#view(job) });
    this.#changed(job);
  }

  /** Something worth saving changed (of `job`, when given): the listeners save it. */
  #changed(job?: Job): void {
    if (job) this.#dirtyJobs.add(job);
    for (const listener of this.#changeListeners) listener();
  }

  #returnToPool(id: number): void {
    let at = this.#pool.findIndex((other) => other > id);
    if (at === -1) at = this.#pool.length;
    this.#pool.splice(at, 0, id);
  }

  #note(job: Job, what: string, ip: string | null): void {
    job.timeline.push({ at: this.#clock.now(), what, ip });
    if (job.timeline.length > this.#maxTimeline) {
      // Keep the first entry (how the job started) and the most recent ones.
      job.timeline.splice(1, 1);
      job.dropped += 1;
    }
  }

  #emit(event: QueueEvent): void {
    for (const listener of this.#listeners) listener(event);
  }

  #view(job: Job): JobView {
    const { state } = job;
    const { ip, attempts, broken, reason } = this.#context(job);
    return {
      id: job.id,
      name: job.workload.name,
      state,
      ip,
      size: job.workload.size,
      contentType: job.workload.contentType,
      attempts,
      broken,
      since: job.since,
      reports: [...job.reports],
      reason,
      bytes: job.bytes,
      timeline: [...job.timeline],
      dropped: job.dropped,
    };
  }
}

/**
 * A saved picture with journal entries (`changesJson()`, oldest first)
 * applied: what `persist()` said when the last of them was written. Throws
 * on an entry that does not fit the picture (a damaged journal). Pure.
 */
export function replayChanges(state: QueueState, entries: readonly unknown[]): QueueState {
  if (entries.length === 0) return state;
  const jobs = [...state.jobs];
  const held = new Map(state.held);
  const poweredOff = new Set(state.poweredOff);
  let savedAt = state.savedAt;
  entries.forEach((entry, n) => {
    const bad = (why: string) => new Error(`journal entry ${n + 1}: ${why}`);
    const { savedAt: at, jobs: changed, servers } = (entry ?? {}) as { savedAt?: unknown; jobs?: unknown; servers?: unknown };
    if (typeof at !== 'number' || !Array.isArray(changed) || !Array.isArray(servers)) throw bad('not a journal entry');
    savedAt = at;
    for (const item of changed as unknown[]) {
      const [id, job] = Array.isArray(item) ? (item as [unknown, SavedJob | undefined]) : [];
      if (typeof id !== 'number' || jobs[id] === undefined || job?.name !== jobs[id]!.name || typeof job.snapshot !== 'object') throw bad('a job that is not in the run');
      jobs[id] = job;
    }
    for (const item of servers as unknown[]) {
      const [ip, id, off] = Array.isArray(item) ? (item as unknown[]) : [];
      if (typeof ip !== 'string' || !(id === null || (typeof id === 'number' && jobs[id] !== undefined)) || typeof off !== 'boolean') throw bad('a server entry that does not fit');
      if (id === null) held.delete(ip);
      else held.set(ip, id);
      if (off) poweredOff.add(ip);
      else poweredOff.delete(ip);
    }
  });
  // The pool is every unassigned job, in order: a job leaves it only by being assigned, and comes back only by lapsing to unassigned.
  const pool = jobs.flatMap((job, id) => ((job.snapshot as { value?: unknown }).value === 'unassigned' ? [id] : []));
  return { ...state, savedAt, jobs, pool, held: [...held], poweredOff: [...poweredOff] };
}

/** 5400000 → 90m: the run timeout as a failure reason says it. */
function humanise(ms: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A snapshot taken after stop() says "stopped"; saved for a restart, it must restore as a running job. */
function running(snapshot: Snapshot<unknown>): Snapshot<unknown> {
  return snapshot.status === 'stopped' ? { ...snapshot, status: 'active' } : snapshot;
}
