import { InvalidArgumentError } from 'commander';

/** A bad command line: one line on stderr, exit 2. Shared by dispatch and beacon. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Asked for help or the version: it is printed, exit 0. */
export class InfoExit extends Error {
  override name = 'InfoExit';
}

/** Commander set up the way both CLIs report: help and version to `out`, errors thrown for the caller to print as one line. */
export function reportingOnce<T extends { showHelpAfterError(v: boolean): T; exitOverride(): T; configureOutput(o: object): T }>(command: T, out: (text: string) => void): T {
  return command
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: () => undefined, outputError: () => undefined });
}

/** Wrap a parser that throws a one-line RangeError as a commander argument parser with that reason. */
export function using<T>(parse: (text: string) => T) {
  return (text: string): T => {
    try {
      return parse(text);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}
