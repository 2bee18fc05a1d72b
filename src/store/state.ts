import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from './durable.ts';

/**
 * What a run was made of, so that `--resume` continues only the same run.
 * `where` names the source (GitHub API host, owner, repo and tag, or a
 * directory's absolute path) and picks the folder; `items` say exactly what
 * was there (each asset's id and updated_at, each file's name, size and
 * mtime), in serving order.
 */
export interface SourceIdentity {
  readonly where: string;
  readonly items: readonly string[];
}

/** A state file as written: the identity it belongs to and the queue's own picture. */
export interface SavedRun<T> {
  readonly version: 1;
  readonly identity: SourceIdentity;
  readonly queue: T;
}

export class StateError extends Error {
  override name = 'StateError';
}

/** The folder one source's runs are saved in: readable, and unique by a hash of `where`. */
export function runFolder(stateDir: string, identity: SourceIdentity): string {
  const hash = createHash('sha256').update(identity.where).digest('hex').slice(0, 16);
  return join(stateDir, 'runs', hash);
}

/** Read the saved run of this source; undefined when there is none. Throws StateError when it cannot be read. */
export async function loadRun<T>(folder: string): Promise<SavedRun<T> | undefined> {
  const path = join(folder, 'state.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateError(`cannot read the saved run ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const saved = JSON.parse(text) as SavedRun<T>;
    if (saved.version !== 1 || typeof saved.identity?.where !== 'string' || !Array.isArray(saved.identity.items) || typeof saved.queue !== 'object') {
      throw new Error('not a dispatch state file');
    }
    return saved;
  } catch (err) {
    throw new StateError(`the saved run ${path} is damaged (${(err as Error).message}); start without --resume to begin afresh`, { cause: err });
  }
}

/**
 * The source of the most recently saved run in `stateDir` other than the one
 * in `folder`, or undefined. Unreadable folders and files are passed over:
 * this only tells a user which run `--resume` would have meant.
 */
export async function lastRunElsewhere(stateDir: string, folder: string): Promise<string | undefined> {
  const runs = join(stateDir, 'runs');
  const names = await readdir(runs).catch(() => [] as string[]);
  let latest: { where: string; at: number } | undefined;
  for (const name of names) {
    const other = join(runs, name);
    if (other === folder) continue;
    const path = join(other, 'state.json');
    const at = await stat(path).then((s) => s.mtimeMs, () => undefined);
    if (at === undefined || (latest && latest.at >= at)) continue;
    const where = await readFile(path, 'utf8').then((text) => (JSON.parse(text) as SavedRun<unknown>).identity?.where, () => undefined);
    if (typeof where === 'string') latest = { where, at };
  }
  return latest?.where;
}

/** Why a saved run is not this one, or undefined when it is. */
export function identityMismatch(saved: SourceIdentity, current: SourceIdentity): string | undefined {
  if (saved.where !== current.where) return `it was a run of ${saved.where}, not ${current.where}`;
  const gone = saved.items.filter((item) => !current.items.includes(item));
  const added = current.items.filter((item) => !saved.items.includes(item));
  if (gone.length > 0 || added.length > 0) {
    const change = [...gone.slice(0, 1).map((i) => `was: ${i}`), ...added.slice(0, 1).map((i) => `now: ${i}`)].join('; ');
    return `the workloads changed since it was saved (${change})`;
  }
  if (saved.items.some((item, i) => current.items[i] !== item)) return 'the workloads are in another order';
  return undefined;
}

/**
 * The one writer of a state file. Every `changed()` makes it dirty; one
 * write is in flight at a time, and when more changes came while it was
 * writing, one more write follows with the latest picture. `flush()`
 * resolves once every change made before it is on disk (written to a
 * temporary file, synced, renamed, directory synced), so an answer can wait
 * for the state it promises.
 */
export class StateWriter {
  readonly path: string;
  readonly #picture: () => unknown;
  readonly #onError: (err: Error) => void;
  /** Bumped by every change; `#saved` is the change the file on disk includes. */
  #version = 0;
  #saved = 0;
  #writing = false;
  #ready: Promise<unknown> | undefined;
  readonly #waiters: Array<{ readonly version: number; resolve(): void; reject(err: Error): void }> = [];

  constructor(folder: string, picture: () => unknown, onError: (err: Error) => void) {
    this.path = join(folder, 'state.json');
    this.#picture = picture;
    this.#onError = onError;
  }

  changed(): void {
    this.#version += 1;
    this.#kick();
  }

  /** Resolves once every change so far is durable; rejects if writing it failed. */
  flush(): Promise<void> {
    const version = this.#version;
    if (this.#saved >= version) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ version, resolve, reject }));
    this.#kick();
    return done;
  }

  /** Write now (a last time, at a stop) and wait for it. */
  async close(): Promise<void> {
    this.changed();
    await this.flush();
  }

  #kick(): void {
    if (this.#writing || this.#saved >= this.#version) return;
    this.#writing = true;
    const version = this.#version;
    let text: string;
    try {
      const picture = this.#picture();
      // A picture may come serialized already (the queue keeps each job's part as text).
      text = `${typeof picture === 'string' ? picture : JSON.stringify(picture)}\n`;
    } catch (err) {
      this.#writing = false;
      this.#settle(version, err as Error);
      return;
    }
    const folder = join(this.path, '..');
    this.#ready ??= mkdir(folder, { recursive: true }).catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    this.#ready
      .then(() => writeAtomic(this.path, text))
      .then(
        () => {
          this.#saved = Math.max(this.#saved, version);
          this.#writing = false;
          this.#settle(version);
          this.#kick();
        },
        (err: unknown) => {
          this.#writing = false;
          const error = err instanceof Error ? err : new Error(String(err));
          this.#onError(error);
          this.#settle(version, error);
          // Someone still waits for a later change: try once more for them.
          if (this.#waiters.length > 0) this.#kick();
        },
      );
  }

  #settle(version: number, error?: Error): void {
    for (let i = this.#waiters.length - 1; i >= 0; i -= 1) {
      const waiter = this.#waiters[i]!;
      if (waiter.version > version) continue;
      this.#waiters.splice(i, 1);
      if (error) waiter.reject(new StateError(`cannot save the run state to ${this.path}: ${error.message}`, { cause: error }));
      else waiter.resolve();
    }
  }
}
