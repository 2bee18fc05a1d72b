/**
 * Run JavaScript in this process's worker threads through the inspector
 * protocol (NodeWorker domain), so a test can look into the TUI's drawing
 * thread without the TUI having a hook for it. Under tsx there are
 * loader-hooks threads too: callers pick their thread by what it answers.
 */
import { Session } from 'node:inspector/promises';

export interface Threads {
  /**
   * `expression`'s value (returned by value) in every worker thread;
   * `require` is the inspector console's. A thread where it threw (a
   * loader-hooks thread, say) gives undefined.
   */
  evaluate(expression: string): Promise<unknown[]>;
  close(): void;
}

export async function workerThreads(): Promise<Threads> {
  const session = new Session();
  session.connect();
  const workers: string[] = [];
  session.on('NodeWorker.attachedToWorker', (message) => workers.push((message.params as { sessionId: string }).sessionId));
  let nextId = 1;
  const answers = new Map<number, (value: unknown) => void>();
  session.on('NodeWorker.receivedMessageFromWorker', (message) => {
    const reply = JSON.parse((message.params as { message: string }).message) as { id?: number; result?: { result?: { value?: unknown } } };
    if (reply.id !== undefined) answers.get(reply.id)?.(reply.result?.result?.value);
  });
  await session.post('NodeWorker.enable', { waitForDebuggerOnStart: false });
  const one = async (sessionId: string, expression: string) => {
    const id = nextId++;
    const answer = new Promise((resolve) => answers.set(id, resolve));
    const params = { expression, includeCommandLineAPI: true, returnByValue: true };
    await session.post('NodeWorker.sendMessageToWorker', { sessionId, message: JSON.stringify({ id, method: 'Runtime.evaluate', params }) });
    return answer;
  };
  return { evaluate: (expression) => Promise.all(workers.map((sessionId) => one(sessionId, expression))), close: () => session.disconnect() };
}

/** An expression that is `inner`'s value in the TUI's drawing thread (the one whose workerData says `loading`), else null. */
export function inDrawingThread(loading: string, inner: string): string {
  return `(() => {
    const { workerData } = require('node:worker_threads');
    if (workerData?.loading !== ${JSON.stringify(loading)}) return null;
    return ${inner};
  })()`;
}
