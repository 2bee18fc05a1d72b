/**
 * Offer one message (boot or report) to candidates in turn until a dispatch takes it.
 * Pure: the HTTP request, the sleep and the deadline are injected.
 *
 * What a status means here (DESIGN §4): 200 taken; 417 "not my server" (try the next);
 * 400/413 the message itself is bad, and another dispatch would say the same; 5xx, 408,
 * 429 and transport errors are passing trouble on that server (retry it a little);
 * anything else means the URL is not a dispatch (next).
 */
import { abortable, type Candidate } from './discover.ts';

export interface Answer {
  readonly status: number;
  /** The response body (dispatch sends one line of text). */
  readonly text: string;
}

/** One request to a candidate; rejects with a short message on a transport error or timeout. */
export type Send = (url: string, signal: AbortSignal) => Promise<Answer>;

export interface Tried {
  readonly candidate: Candidate;
  readonly outcome: string;
}

export type Delivery =
  | { readonly kind: 'accepted'; readonly candidate: Candidate; readonly answer: Answer; readonly tried: readonly Tried[] }
  | { readonly kind: 'refused'; readonly candidate: Candidate; readonly status: number; readonly reason: string }
  | { readonly kind: 'undelivered'; readonly tried: readonly Tried[]; readonly timedOut: boolean };

export interface DeliverDeps {
  readonly send: Send;
  /** Waits between tries of one candidate: 3 entries = up to 4 tries. */
  readonly retryDelaysMs: readonly number[];
  readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly log: (message: string) => void;
  /** The overall deadline. */
  readonly signal: AbortSignal;
}

/** The first line of a body, short enough for a one-line summary. */
export function reasonOf(text: string): string {
  const line = text.trim().split('\n')[0]?.trim() ?? '';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

function statusText(answer: Answer): string {
  const reason = reasonOf(answer.text);
  return reason === '' ? String(answer.status) : `${answer.status} ${reason}`;
}

const isRetryable = (status: number) => status >= 500 || status === 408 || status === 429;
const isBadMessage = (status: number) => status === 400 || status === 413;

function secondsText(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`;
}

/** Offer the message to each candidate until one takes it, one refuses it for good, or the deadline passes. */
export async function deliver(candidates: AsyncIterable<Candidate>, deps: DeliverDeps): Promise<Delivery> {
  const { signal, log } = deps;
  const tried: Tried[] = [];
  const iterator = candidates[Symbol.asyncIterator]();
  const timedOut = (): Delivery => ({ kind: 'undelivered', tried, timedOut: true });
  for (;;) {
    let next: IteratorResult<Candidate>;
    try {
      next = await iterator.next();
    } catch (err) {
      if (signal.aborted) return timedOut();
      throw err;
    }
    if (next.done) return { kind: 'undelivered', tried, timedOut: false };
    const candidate = next.value;

    for (let attempt = 1; ; attempt++) {
      log(`${candidate.url} (${candidate.origin}): try ${attempt}`);
      let answer: Answer | undefined;
      let failure: string;
      try {
        answer = await deps.send(candidate.url, signal);
      } catch (err) {
        if (signal.aborted) {
          tried.push({ candidate, outcome: 'no answer before the deadline' });
          return timedOut();
        }
        answer = undefined;
        failure = (err as Error).message;
      }
      if (answer !== undefined) {
        log(`${candidate.url}: ${statusText(answer)}`);
        if (answer.status >= 200 && answer.status < 300) return { kind: 'accepted', candidate, answer, tried };
        if (isBadMessage(answer.status)) return { kind: 'refused', candidate, status: answer.status, reason: reasonOf(answer.text) };
        if (!isRetryable(answer.status)) {
          tried.push({ candidate, outcome: answer.status === 417 ? statusText(answer) : `${statusText(answer)} (not a dispatch?)` });
          break;
        }
        failure = statusText(answer);
      } else {
        log(`${candidate.url}: ${failure!}`);
      }
      const wait = deps.retryDelaysMs[attempt - 1];
      if (wait === undefined) {
        tried.push({ candidate, outcome: `${failure!} (${attempt} ${attempt === 1 ? 'try' : 'tries'})` });
        break;
      }
      log(`${candidate.url}: trying again in ${secondsText(wait)}`);
      try {
        await abortable(deps.sleep(wait, signal), signal);
      } catch {
        tried.push({ candidate, outcome: `${failure!} (${attempt} ${attempt === 1 ? 'try' : 'tries'}, then the deadline)` });
        return timedOut();
      }
    }
  }
}
