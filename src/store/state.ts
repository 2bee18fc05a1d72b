import { createHash, randomBytes } from 'node:crypto';
import { constants, fstat, write } from 'node:fs';
import { mkdir, open, readdir, readFile, stat, unlink, type FileHandle } from 'node:fs/promises';
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

/** A state file as written: the identity it belongs to, the queue's own picture, and the journal of changes since. */
export interface SavedRun<T> {
  readonly version: 1;
  readonly identity: SourceIdentity;
  /** The journal file (in the same folder) of what changed after this picture; absent in files from before journals. */
  readonly journal?: string;
  readonly queue: T;
}

/** A saved run as read back: its picture and the journal entries to apply to it, oldest first. */
export interface LoadedRun<T> extends SavedRun<T> {
  readonly changes: readonly unknown[];
}

export class StateError extends Error {
  override name = 'StateError';
}

/** The folder one source's runs are saved in: readable, and unique by a hash of `where`. */
export function runFolder(stateDir: string, identity: SourceIdentity): string {
  const hash = createHash('sha256').update(identity.where).digest('hex').slice(0, 16);
  return join(stateDir, 'runs', hash);
}

/** Read the saved run of this source and its journal; undefined when there is none. Throws StateError when it cannot be read. */
export async function loadRun<T>(folder: string): Promise<LoadedRun<T> | undefined> {
  const path = join(folder, 'state.json');
  const text = await readText(path);
  if (text === undefined) return undefined;
  let saved: SavedRun<T>;
  try {
    saved = JSON.parse(text) as SavedRun<T>;
    if (saved.version !== 1 || typeof saved.identity?.where !== 'string' || !Array.isArray(saved.identity.items) || typeof saved.queue !== 'object') {
      throw new Error('not a dispatch state file');
    }
    if (saved.journal !== undefined && (typeof saved.journal !== 'string' || !/^journal-[\w-]+\.ndjson$/.test(saved.journal))) throw new Error('it names no journal file of its own');
  } catch (err) {
    throw new StateError(`the saved run ${path} is damaged (${(err as Error).message}); start without --resume to begin afresh`, { cause: err });
  }
  if (saved.journal === undefined) return { ...saved, changes: [] };
  const journalPath = join(folder, saved.journal);
  // A journal not there yet is an empty one: nothing changed after the picture.
  const journal = (await readText(journalPath)) ?? '';
  return { ...saved, changes: journalEntries(journal, journalPath) };
}

/**
 * The entries of a journal, one JSON text a line. A last line without its
 * newline was cut by a crash in the middle of its write: it was never
 * acknowledged, so it is left out. Any other line that does not parse means
 * a damaged journal. (Each line is written with its newline in one write.)
 */
export function journalEntries(text: string, path: string): unknown[] {
  const lines = text.split('\n');
  lines.pop(); // '' after the last newline, or the torn line
  const entries: unknown[] = [];
  lines.forEach((line, n) => {
    try {
      entries.push(JSON.parse(line));
    } catch (err) {
      throw new StateError(`the saved run's journal ${path} is damaged at line ${n + 1} (${(err as Error).message}); start without --resume to begin afresh`, { cause: err });
    }
  });
  return entries;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateError(`cannot read the saved run ${path}: ${(err as Error).message}`, { cause: err });
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
  const modified = (path: string) => stat(path).then((s) => s.mtimeMs, () => undefined);
  let latest: { where: string; at: number } | undefined;
  for (const name of names) {
    const other = join(runs, name);
    if (other === folder) continue;
    const path = join(other, 'state.json');
    const saved = await readFile(path, 'utf8').then((text) => JSON.parse(text) as Partial<SavedRun<unknown>>, () => undefined);
    const where = saved?.identity?.where;
    if (typeof where !== 'string') continue;
    // Saved last when its picture was, or its journal: whichever was written later.
    const journal = typeof saved?.journal === 'string' ? await modified(join(other, saved.journal)) : undefined;
    const at = Math.max((await modified(path)) ?? 0, journal ?? 0);
    if (!latest || at > latest.at) latest = { where, at };
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

/** What a state writer saves: the whole picture, and what changed since it was last asked. */
export interface StateSource {
  /** The whole picture, as JSON text. */
  snapshot(): string;
  /** JSON text of what changed since the last `snapshot()` or `changes()`, or undefined when nothing did. */
  changes(): string | undefined;
}

/** Journal bytes beyond which the next save is a whole picture again: this, or twice the last picture when that is more. */
const COMPACT_AT_BYTES = 1024 * 1024;

/**
 * How often, at most, an append also asks whether its journal was removed
 * (its folder deleted under a running dispatch), ms. The question is a trip
 * to the thread pool and cost a boot storm more than the append itself; once
 * the removal is seen, the next save is a whole picture, which carries every
 * change since.
 */
const REMOVAL_CHECK_MS = 100;

/**
 * The one writer of a run's state: a picture (`state.json`) and a journal of
 * what changed since (one JSON line per save, named in the picture), so a
 * save costs what changed, not the whole run. Every `changed()` makes it
 * dirty; a save starts once the current task is done, one is in flight at
 * a time, and changes made meanwhile go out together in the next (group
 * commit). `flush()` resolves once every change
 * made before it is on disk: a journal line appended (O_DSYNC), or a
 * new picture written to a temporary file, synced, renamed, its directory
 * synced. Once the journal outgrows the picture, the next save is a picture
 * with a fresh journal, and the old journal goes. A crash at any point
 * leaves a picture and the journal it names, which `loadRun` replays.
 */
export class StateWriter {
  readonly path: string;
  readonly #folder: string;
  readonly #identityJson: string;
  readonly #source: StateSource;
  readonly #onError: (err: Error) => void;
  /** Journal bytes that make the next save a picture (a test's); by default, see COMPACT_AT_BYTES. */
  readonly #compactAtBytes: number | undefined;
  /** Names this writer's journals apart from any earlier process's. */
  readonly #tag = randomBytes(4).toString('hex');
  #generation = 0;
  /** The journal the picture on disk names; undefined until the first picture. */
  #journal: { readonly name: string; readonly handle: FileHandle; bytes: number; checkedAt: number } | undefined;
  #pictureBytes = 0;
  /** The next save must be a whole picture (none yet, a failed save, or a stop). */
  #wantPicture = true;
  /** Bumped by every change; `#saved` is the change the files on disk include. */
  #version = 0;
  #saved = 0;
  #writing = false;
  /** The save under way, if any: the journal's descriptor stays open until it is over. */
  #current: Promise<void> | undefined;
  #scheduled = false;
  #closed = false;
  readonly #waiters: Array<{ readonly version: number; resolve(): void; reject(err: Error): void }> = [];

  constructor(folder: string, identity: SourceIdentity, source: StateSource, onError: (err: Error) => void, options: { readonly compactAtBytes?: number } = {}) {
    this.#folder = folder;
    this.#compactAtBytes = options.compactAtBytes;
    this.path = join(folder, 'state.json');
    this.#identityJson = JSON.stringify(identity);
    this.#source = source;
    this.#onError = onError;
  }

  changed(): void {
    this.#version += 1;
    // Not at once: the other transitions of the same request (or tick) join this save.
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#kick();
    });
  }

  /** Resolves once every change so far is durable; rejects if writing it failed. */
  flush(): Promise<void> {
    const version = this.#version;
    if (this.#saved >= version) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ version, resolve, reject }));
    this.#kick();
    return done;
  }

  /** Write a whole picture now (a last time, at a stop), wait for it, and let the journal go. */
  async close(): Promise<void> {
    this.#wantPicture = true;
    this.changed();
    try {
      await this.flush();
    } finally {
      this.#closed = true;
      // A retry for later waiters may still be writing through the descriptor: never close it under a write.
      await this.#current?.catch(() => undefined);
      await this.#journal?.handle.close().catch(() => undefined);
    }
  }

  #kick(): void {
    if (this.#writing || this.#closed || this.#saved >= this.#version) return;
    this.#writing = true;
    const version = this.#version;
    let save: Promise<void>;
    try {
      save = this.#wantPicture || (this.#journal && this.#journal.bytes >= (this.#compactAtBytes ?? Math.max(COMPACT_AT_BYTES, 2 * this.#pictureBytes))) ? this.#writePicture() : this.#append();
    } catch (err) {
      save = Promise.reject(err as Error);
    }
    this.#current = save;
    save.then(
      () => {
        this.#saved = Math.max(this.#saved, version);
        this.#writing = false;
        this.#settle(version);
        this.#kick();
      },
      (err: unknown) => {
        this.#writing = false;
        // What this save held is in no file now: only a whole picture can be sure to carry it.
        this.#wantPicture = true;
        const error = err instanceof Error ? err : new Error(String(err));
        this.#onError(error);
        this.#settle(version, error);
        // Someone still waits for a later change: try once more for them.
        if (this.#waiters.length > 0) this.#kick();
      },
    );
  }

  /** The whole picture, naming a fresh (empty) journal; then the old journal goes. */
  async #writePicture(): Promise<void> {
    this.#source.changes(); // the picture holds them
    const queue = this.#source.snapshot();
    this.#generation += 1;
    const name = `journal-${this.#tag}-${this.#generation}.ndjson`;
    const text = `{"version":1,"identity":${this.#identityJson},"journal":${JSON.stringify(name)},"queue":${queue}}\n`;
    await mkdir(this.#folder, { recursive: true });
    // Created before the picture that names it, so the picture's directory sync makes its entry durable too.
    // O_DSYNC: each append is on disk when its write returns, one trip to the thread pool instead of two.
    const handle = await open(join(this.#folder, name), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC);
    try {
      await writeAtomic(this.path, text);
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(join(this.#folder, name)).catch(() => undefined);
      throw err;
    }
    const old = this.#journal;
    this.#journal = { name, handle, bytes: 0, checkedAt: -Infinity };
    this.#pictureBytes = text.length;
    this.#wantPicture = false;
    if (old) await old.handle.close().catch(() => undefined);
    // Journals no picture names any more: this writer's last one, and an earlier process's.
    const names = await readdir(this.#folder).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => /^journal-.*\.ndjson$/.test(n) && n !== name).map((n) => unlink(join(this.#folder, n)).catch(() => undefined)));
  }

  /** One journal line with what changed since the last save. */
  async #append(): Promise<void> {
    const changes = this.#source.changes();
    const journal = this.#journal!;
    if (changes === undefined) return;
    const line = Buffer.from(`${changes}\n`, 'utf8');
    const fd = journal.handle.fd;
    // A journal whose folder was removed under us takes appends that no restart will ever read: asked alongside, not after.
    const now = performance.now();
    const check = now - journal.checkedAt >= REMOVAL_CHECK_MS;
    if (check) journal.checkedAt = now;
    // The callback API: a FileHandle call costs a promise and more for every save.
    const [bytesWritten, links] = await Promise.all([
      new Promise<number>((resolve, reject) => write(fd, line, 0, line.byteLength, null, (err, written) => (err ? reject(err) : resolve(written)))),
      check ? new Promise<number>((resolve, reject) => fstat(fd, (err, stats) => (err ? reject(err) : resolve(stats.nlink)))) : undefined,
    ]);
    if (bytesWritten !== line.byteLength) throw new Error(`only ${bytesWritten} of ${line.byteLength} bytes reached the journal ${join(this.#folder, journal.name)}`);
    if (links === 0) throw new Error(`the journal ${join(this.#folder, journal.name)} was removed`);
    journal.bytes += line.byteLength;
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
