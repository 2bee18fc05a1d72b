import type { Clock, Queue, QueueEvent } from '../jobs/index.ts';
import type { Log } from '../log.ts';
import { iso } from './format.ts';

/** One queue event as a record: the fields of a plain line, for NDJSON. */
export interface EventRecord {
  readonly time: string;
  readonly job: string;
  readonly server: string | null;
  readonly event: string;
  /** The job's state after the event (absent for poweroff.efi). */
  readonly state?: string;
}

/** Queue events as records; undefined for events that are not worth a line. */
export function eventRecord(event: QueueEvent): EventRecord | undefined {
  switch (event.kind) {
    case 'job':
      return { time: iso(event.at), job: event.job.name, server: event.job.ip, event: event.what, state: event.job.state };
    case 'poweroff':
      return { time: iso(event.at), job: 'poweroff.efi', server: event.ip, event: event.what };
    case 'failed':
      // Already said by the 'job' event that carried the transition.
      return undefined;
    case 'progress':
      // Many a second: for the TUI, not for a log.
      return undefined;
  }
}

/** Queue events as plain lines: time, job, server, event. */
export function formatEvent(event: QueueEvent): string | undefined {
  const record = eventRecord(event);
  return record && `${record.time}  ${record.job}  ${record.server ?? '-'}  ${record.event}`;
}

/** `(subsystem, message)` as one plain line: time, subsystem, message. */
export function plainLog(write: (line: string) => void, clock: Pick<Clock, 'now'>): Log {
  return (subsystem, message) => write(`${iso(clock.now())}  ${subsystem}  ${message}`);
}

/** `(subsystem, message)` as one NDJSON line. */
export function jsonLog(write: (line: string) => void, clock: Pick<Clock, 'now'>): Log {
  return (subsystem, message) => write(JSON.stringify({ time: iso(clock.now()), subsystem, message }));
}

/** The UI subscribes; it owns no state. Plain lines, or NDJSON with the same fields. */
export function logQueue(queue: Queue, write: (line: string) => void, format: 'plain' | 'json' = 'plain'): () => void {
  return queue.subscribe((event) => {
    if (format === 'json') {
      const record = eventRecord(event);
      if (record !== undefined) write(JSON.stringify(record));
    } else {
      const line = formatEvent(event);
      if (line !== undefined) write(line);
    }
  });
}
