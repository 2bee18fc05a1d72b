/** A bad command line: one line on stderr, exit 2. Shared by dispatch and beacon. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Asked for help or the version: it is printed, exit 0. */
export class InfoExit extends Error {
  override name = 'InfoExit';
}
