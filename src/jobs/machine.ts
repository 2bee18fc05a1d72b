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
}

export type JobEvent =
  | { type: 'assign'; ip: string }
  | { type: 'download.start' }
  | { type: 'download.progress' }
  | { type: 'download.done' }
  | { type: 'download.broken' }
  | { type: 'boot' }
  | { type: 'report' }
  | { type: 'report.filed' }
  | { type: 'fail'; reason: string };

/**
 * One job's lifecycle. Every effect is named here; the queue provides the
 * download timeout with `provide({ delays })` and a clock through `createActor`.
 */
export const jobMachine = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
  },
  delays: {
    // Rule 2: overridden from --download-timeout.
    downloadTimeout: 5 * 60_000,
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
  },
  guards: {
    // Counted before the decrement runs: the last unfiled report is being filed.
    lastUnfiled: ({ context }) => context.unfiled <= 1,
  },
}).createMachine({
  id: 'job',
  initial: 'unassigned',
  context: { ip: null, transferred: false, attempts: 0, broken: 0, unfiled: 0, reason: null },
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
      },
    },
    downloading: {
      after: { downloadTimeout: { target: 'unassigned', actions: 'release' } },
      on: {
        // Re-entering restarts the no-progress timer (rule 2 counts progress, not age).
        'download.start': { target: 'downloading', reenter: true, actions: 'startTransfer' },
        'download.progress': { target: 'downloading', reenter: true },
        'download.done': { target: 'downloading', reenter: true, actions: 'markTransferred' },
        'download.broken': { actions: 'countBroken' },
        boot: { target: 'booting' },
      },
    },
    booting: {
      on: {
        boot: { target: 'booting' },
        report: { target: 'reported', actions: 'acceptReport' },
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
