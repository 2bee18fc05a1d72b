export { Queue, replayChanges, type Accepted, type Claim, type JobView, type QueueEvent, type QueueOptions, type QueueState, type SavedJob, type TimelineEntry, type Transfer } from './queue.ts';
export type { JobState } from './machine.ts';
export { systemClock, type Clock } from './clock.ts';
export { Completion, type CompletionOptions, type Verdict } from './completion.ts';
