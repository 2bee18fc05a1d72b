import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * A terminal for the TUI in tests: stdout keeps every chunk it is sent;
 * stdin is a stream the test can type into, a TTY (with raw mode, recorded)
 * only when asked for.
 */
export function fakeTerminal(options: { columns?: number; rows?: number; tty?: boolean } = {}) {
  const writes: string[] = [];
  const stdout = Object.assign(new EventEmitter(), { columns: options.columns ?? 100, rows: options.rows ?? 30, isTTY: true, write: (chunk: string) => (writes.push(chunk), true) });
  const raw: boolean[] = [];
  const stdin: PassThrough & { isTTY: boolean; isRaw?: boolean; setRawMode?: (mode: boolean) => unknown } = Object.assign(new PassThrough(), { isTTY: options.tty === true });
  if (options.tty) {
    stdin.isRaw = false;
    stdin.setRawMode = (mode: boolean) => (raw.push(mode), (stdin.isRaw = mode), stdin);
  }
  return {
    stdout: stdout as unknown as NodeJS.WriteStream,
    stdin: stdin as unknown as NodeJS.ReadStream,
    /** The raw stream behind `stdin`, to type into. */
    keyboard: stdin,
    writes,
    /** Raw mode as the TUI set it, in order. */
    raw,
    /** Until some chunk sent includes `text` (30 s at most: the drawing thread loads ink first). */
    async until(text: string): Promise<void> {
      for (let i = 0; i < 300 && !writes.some((chunk) => chunk.includes(text)); i++) await delay(100);
    },
  };
}
