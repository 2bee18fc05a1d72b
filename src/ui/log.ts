import type { Clock, Queue, QueueEvent } from '../jobs/index.ts';
import type { Log } from '../log.ts';

/** `(subsystem, message)` as one plain line: time, subsystem, message. */
export function plainLog(write: (line: string) => void, clock: Pick<Clock, 'now'>): Log {
  return (subsystem, message) => write(`${iso(clock.now())}  ${subsystem}  ${message}`);
}

/** Queue events as plain lines: time, job, server, event. */
export function formatEvent(event: QueueEvent): string | undefined {
  switch (event.kind) {
    case 'job':
      return `${iso(event.at)}  ${event.job.name}  ${event.job.ip ?? '-'}  ${event.what}`;
    case 'poweroff':
      return `${iso(event.at)}  poweroff.efi  ${event.ip}  ${event.what}`;
    case 'failed':
      // Already said by the 'job' event that carried the transition.
      return undefined;
    case 'progress':
      // Many a second: for the TUI, not for a log.
      return undefined;
  }
}

/** The UI subscribes; it owns no state. */
export function logQueue(queue: Queue, write: (line: string) => void): () => void {
  return queue.subscribe((event) => {
    const line = formatEvent(event);
    if (line !== undefined) write(line);
  });
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
