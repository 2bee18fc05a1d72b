import { assign, setup } from 'xstate';

/** Where a job is in its life. `finished` and `failed` are final for the lab; see DESIGN §5. */
export type JobState = 'unassigned' | 'assigned' | 'downloading' | 'booting' | 'reported' | 'finished' | 'failed';

export interface JobContext {
  /** The server (peer IP) that holds the job; null while it is in the pool. */
  readonly ip: string | null;
  /** The last transfer delivered the whole workload (rule 3 tells a reboot from a retry by it). */
  readonly transferred: boolean;
  /** Downloads started (GETs, resumed ones included). */
  readonly attempts: number;
  /** Transfers that ended before the last byte. */
  readonly broken: number;
  /** Reports acknowledged but not yet filed (rule 7). */
  readonly unfiled: number;
  readonly reason: string | null;
  /** When the workload first said it booted (clock ms): rule 4 counts from here, across restarts too. */
  readonly bootedAt: number | null;
  /** Failed by rule 4: a report that still comes from its server is taken as a late one. */
  readonly timedOut: boolean;
}

/** Rule 5: this many broken transfers fail the job. */
export const MAX_BROKEN = 3;

export type JobEvent =
  | { type: 'assign'; ip: string }
  | { type: 'download.start' }
  | { type: 'download.progress' }
  | { type: 'download.done' }
  | { type: 'download.broken' }
  | { type: 'boot'; at: number }
  | { type: 'report' }
  | { type: 'report.filed' }
  | { type: 'fail'; reason: string }
  /**
   * The job was restored from a saved run: timers are not in a persisted
   * snapshot, so they are armed again. A booting job gets what is left of
   * its run timeout; a job a server was fetching stays that server's (its
   * firmware's retry, or its Range resume, must get the same bytes) for a
   * fresh download timeout, then goes back to the pool as rule 2 says.
   */
  | { type: 'resume' };

/**
 * One job's lifecycle. Every effect is named here; the queue provides the
 * download and run timeouts with `provide({ delays })` (and the wording of a
 * timeout with `provide({ actions })`) and a clock through `createActor`.
 */
export const jobMachine = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
  },
  delays: {
    // Rule 2: overridden from --download-timeout.
    downloadTimeout: 5 * 60_000,
    // Rule 4: overridden from --run-timeout, as what is left since bootedAt.
    runTimeout: 60 * 60_000,
  },
  actions: {
    holdBy: assign({ ip: (_, params: { ip: string }) => params.ip, transferred: false }),
    release: assign({ ip: null, transferred: false }),
    startTransfer: assign({ attempts: ({ context }) => context.attempts + 1, transferred: false }),
    markTransferred: assign({ transferred: true }),
    countBroken: assign({ broken: ({ context }) => context.broken + 1 }),
    acceptReport: assign({ unfiled: ({ context }) => context.unfiled + 1 }),
    fileReport: assign({ unfiled: ({ context }) => Math.max(0, context.unfiled - 1) }),
    setReason: assign({ reason: (_, params: { reason: string }) => params.reason }),
    markBooted: assign({ bootedAt: (_, params: { at: number }) => params.at }),
    // Rule 4; the queue provides the reason with the timeout as the user gave it.
    timedOut: assign({ reason: 'timed out', timedOut: true }),
    brokenTooOften: assign({ reason: `download broke ${MAX_BROKEN} times` }),
  },
  guards: {
    // Rule 5, counted before countBroken runs: this break is the last one allowed.
    lastBreak: ({ context }) => context.broken + 1 >= MAX_BROKEN,
    // Counted before the decrement runs: the last unfiled report is being filed.
    lastUnfiled: ({ context }) => context.unfiled <= 1,
  },
}).createMachine({
  id: 'job',
  initial: 'unassigned',
  context: { ip: null, transferred: false, attempts: 0, broken: 0, unfiled: 0, reason: null, bootedAt: null, timedOut: false },
  on: {
    fail: { target: '.failed', actions: { type: 'setReason', params: ({ event }) => ({ reason: event.reason }) } },
  },
  states: {
    unassigned: {
      on: {
        assign: { target: 'assigned', actions: { type: 'holdBy', params: ({ event }) => ({ ip: event.ip }) } },
      },
    },
    assigned: {
      after: { downloadTimeout: { target: 'unassigned', actions: 'release' } },
      on: {
        'download.start': { target: 'downloading', actions: 'startTransfer' },
        resume: { target: 'assigned', reenter: true },
      },
    },
    downloading: {
      after: { downloadTimeout: { target: 'unassigned', actions: 'release' } },
      on: {
        // Re-entering restarts the no-progress timer (rule 2 counts progress, not age).
        'download.start': { target: 'downloading', reenter: true, actions: 'startTransfer' },
        'download.progress': { target: 'downloading', reenter: true },
        'download.done': { target: 'downloading', reenter: true, actions: 'markTransferred' },
        'download.broken': [
          { guard: 'lastBreak', target: 'failed', actions: ['countBroken', 'brokenTooOften'] },
          { actions: 'countBroken' },
        ],
        boot: { target: 'booting', actions: { type: 'markBooted', params: ({ event }) => ({ at: event.at }) } },
        resume: { target: 'downloading', reenter: true },
      },
    },
    booting: {
      after: { runTimeout: { target: 'failed', actions: 'timedOut' } },
      on: {
        // Not a re-entry: the run timeout counts from the first `beacon boot`.
        boot: { target: 'booting' },
        report: { target: 'reported', actions: 'acceptReport' },
        resume: { target: 'booting', reenter: true },
      },
    },
    reported: {
      on: {
        report: { actions: 'acceptReport' },
        'report.filed': [
          { guard: 'lastUnfiled', target: 'finished', actions: 'fileReport' },
          { actions: 'fileReport' },
        ],
      },
    },
    finished: {
      // Rule 6: a workload may report again after its first report was filed.
      on: { report: { target: 'reported', actions: 'acceptReport' }, fail: {} },
    },
    failed: {
      // Final for the lab, but not an xstate final state: nothing moves it, and
      // a root-level `fail` must not re-fire here.
      on: { fail: {} },
    },
  },
});
