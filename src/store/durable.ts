import { randomBytes } from 'node:crypto';
import { close, constants, fstat, fsync, open, stat, write, type Stats } from 'node:fs';
import { link, mkdir, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * Files that survive a crash or a power cut: written to a temporary name,
 * fsynced, moved into place, then the directory fsynced. A crash half-way
 * leaves at most a temporary file, never half a file under its real name.
 *
 * Each file is synced on its own; directory syncs are shared (group
 * commit): a directory sync that starts after a file got its name makes
 * that name durable, so the files named while one sync runs all wait for
 * the next one, and a burst of reports costs a few directory syncs, not one
 * each. The file work uses Node's callback API: a FileHandle (fs/promises)
 * costs an object, a promise per call and garbage for every report.
 *
 * Each step is a trip to libuv's threads and back through the event loop,
 * and a busy loop makes each trip wait: a report waits for as few as can be.
 * The temporary file is opened O_DSYNC, so its write returns only once its
 * bytes (and its size) are on disk, and no separate fsync is needed; closing
 * it, or a synced directory, happens beside what follows, not before it; the
 * directory is opened for its sync while the file gets its name. Four trips:
 * open, write, link (or rename), fsync.
 */

export interface WriteOptions {
  /** The folder was not there (removed while dispatch runs) and has been made again. */
  readonly remade?: (dir: string) => void;
}

/** Write `path`, replacing what was there. */
export async function writeAtomic(path: string, data: string, options: WriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  const temp = await writeTemp(dir, data, options);
  const { folder } = await nameBesideFolder(temp, dir, rename(temp, path));
  await syncDirectory(dir, folder);
}

/** Write a new file `stem.ext` in `dir`, or `stem-2.ext`, … if that name is taken; never overwrite. */
export async function writeUnique(dir: string, stem: string, ext: string, data: string, options: WriteOptions = {}): Promise<string> {
  const temp = await writeTemp(dir, data, options);
  const { named, folder } = await nameBesideFolder(temp, dir, linkUnique(temp, dir, stem, ext));
  // The temporary name goes while the directory syncs: only the new one must be durable.
  await Promise.all([syncDirectory(dir, folder), unlink(temp).catch(() => undefined)]);
  return named;
}

/**
 * Wait for `naming` (the temporary file getting its name) while `dir` is
 * opened for its sync, not after. If the naming fails, the folder is closed,
 * the temporary file goes, and its error is thrown.
 */
async function nameBesideFolder<T>(temp: string, dir: string, naming: Promise<T>): Promise<{ named: T; folder: number | undefined }> {
  const [named, opened] = await Promise.allSettled([naming, openFolder(dir)]);
  const folder = opened.status === 'fulfilled' ? opened.value : undefined;
  if (named.status === 'rejected') {
    if (folder !== undefined) close(folder, () => undefined);
    await unlink(temp).catch(() => undefined);
    throw named.reason;
  }
  return { named: named.value, folder };
}

/** Remove a file for good (the removal itself made durable). */
export async function removeDurably(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  await syncDirectory(dirname(path));
}

/** Link `temp` as `stem.ext`, or the first of `stem-2.ext`, `stem-3.ext`, … not taken. */
async function linkUnique(temp: string, dir: string, stem: string, ext: string): Promise<string> {
  for (let n = 1; ; n += 1) {
    const path = join(dir, n === 1 ? `${stem}${ext}` : `${stem}-${n}${ext}`);
    try {
      await link(temp, path);
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Create only, write only, each write on disk before it returns. */
const CREATE_SYNCED = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;

/**
 * A new temporary file in `dir` holding `data`, its bytes on disk before this
 * resolves. A `dir` that is not there (a clean-up removed it while dispatch
 * runs) is made again, as it was at the start, rather than failing every
 * write to it from then on.
 */
function writeTemp(dir: string, data: string, options: WriteOptions): Promise<string> {
  const temp = join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const bytes = Buffer.from(data, 'utf8');
  return new Promise((resolve, reject) => {
    const create = (remade: boolean) => open(temp, CREATE_SYNCED, 0o666, (openErr, fd) => {
      if (openErr?.code === 'ENOENT' && !remade) {
        return void makeAgain(dir).then((made) => {
          if (made) options.remade?.(dir);
          create(true);
        }, reject);
      }
      // O_EXCL: a file there is not ours to remove.
      if (openErr) return reject(openErr);
      const fail = (err: Error) => close(fd, () => unlink(temp).catch(() => undefined).then(() => reject(err)));
      const done = () => {
        // The bytes are durable: what close could still report (it syncs
        // nothing on a local file system) cannot undo that, so it runs while
        // the file gets its name.
        close(fd, () => undefined);
        resolve(temp);
      };
      const writeFrom = (offset: number) => {
        if (offset === bytes.length) return done();
        write(fd, bytes, offset, bytes.length - offset, null, (err, written) => {
          if (err) return fail(err);
          // A file that takes nothing (never on a local file system) would be asked forever.
          if (written === 0) return fail(new Error(`${temp} took no bytes`));
          writeFrom(offset + written);
        });
      };
      // Nothing to write is nothing O_DSYNC syncs: the empty file's inode is synced by hand.
      if (bytes.length === 0) fsync(fd, (err) => (err ? fail(err) : done()));
      else writeFrom(0);
    });
    create(false);
  });
}

/** Folders being made again now: a write that finds one missing meanwhile waits for the same making and its syncs. */
const remaking = new Map<string, Promise<boolean>>();

/** Make `dir` and any missing parents, each new name synced in its parent as a file's is; false if another write made it. */
function makeAgain(dir: string): Promise<boolean> {
  const running = remaking.get(dir);
  if (running) return running.then(() => false);
  const making = makeDurably(dir).finally(() => remaking.delete(dir));
  remaking.set(dir, making);
  return making;
}

async function makeDurably(dir: string): Promise<boolean> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return false;
  const parents: string[] = [];
  for (let path = dir; path !== dirname(path); path = dirname(path)) {
    parents.push(dirname(path));
    if (path === first) break;
  }
  await Promise.all(parents.map((parent) => syncDirectory(parent)));
  return true;
}

/**
 * Resolves once `dir`'s entries as they are now are durable: by a sync that
 * starts now if none is running, else by the next one, started as soon as the
 * running one ends (it may have begun before the caller's change). A caller
 * may bring the folder already open (a descriptor this then owns).
 */
const syncDirectory = groupCommit(fsyncDirectory);

/** Who waits for the next run of one key's commit, what they brought for it, and whether one runs now. */
interface Group<O> {
  running: boolean;
  waiting: Array<{ readonly offer: O | undefined; resolve(): void; reject(err: unknown): void }>;
}

/**
 * Share `commit(key)` among callers (group commit): a caller is settled by
 * the first run that starts after its call. With none running it starts at
 * once; while one runs, callers gather and the next starts when it ends, for
 * all of them. At most one run per key at a time. What callers offer goes
 * to the run that settles them (every offer to exactly one run).
 */
export function groupCommit<O = never>(commit: (key: string, offers: readonly O[]) => Promise<void>): (key: string, offer?: O) => Promise<void> {
  const groups = new Map<string, Group<O>>();
  const start = (key: string, group: Group<O>) => {
    const batch = group.waiting;
    const offers = batch.flatMap((waiter) => (waiter.offer === undefined ? [] : [waiter.offer]));
    group.waiting = [];
    group.running = true;
    const settle = (err?: unknown) => {
      for (const waiter of batch) {
        if (err === undefined) waiter.resolve();
        else waiter.reject(err);
      }
      if (group.waiting.length > 0) return start(key, group);
      group.running = false;
      groups.delete(key);
    };
    new Promise<void>((resolve) => resolve(commit(key, offers))).then(() => settle(), (err: unknown) => settle(err ?? new Error('commit failed')));
  };
  return (key, offer) => {
    const group = groups.get(key) ?? { running: false, waiting: [] };
    groups.set(key, group);
    const done = new Promise<void>((resolve, reject) => group.waiting.push({ offer, resolve, reject }));
    if (!group.running) start(key, group);
    return done;
  };
}

/** The folder, opened to be synced; undefined if it cannot be (the sync then opens it itself, and says why). */
function openFolder(dir: string): Promise<number | undefined> {
  return new Promise((resolve) => open(dir, 'r', (err, fd) => resolve(err ? undefined : fd)));
}

/**
 * One sync of a directory's entries. Through a descriptor a caller opened
 * while its file got its name, if any: one trip to the thread pool, not two.
 * That descriptor may be of a folder no longer under the name (removed, or
 * moved away and made again, as the file got its name): asked beside the
 * sync, and then the folder under the name is opened and synced instead.
 * Descriptors are closed off the caller's path.
 */
export function fsyncDirectory(dir: string, offered: readonly number[]): Promise<void> {
  const [fd, ...spare] = offered;
  for (const other of spare) close(other, () => undefined);
  if (fd === undefined) return openAndSync(dir);
  return new Promise((resolve, reject) => {
    let pending = 3;
    let syncErr: Error | undefined;
    let held: Stats | undefined;
    let named: Stats | undefined;
    const settle = () => {
      if (--pending > 0) return;
      close(fd, () => undefined);
      if (syncErr) reject(syncErr);
      else if (held && named && held.ino === named.ino && held.dev === named.dev) resolve();
      else openAndSync(dir).then(resolve, reject);
    };
    fsync(fd, (err) => {
      syncErr = err ?? undefined;
      settle();
    });
    fstat(fd, (err, stats) => {
      held = err ? undefined : stats;
      settle();
    });
    stat(dir, (err, stats) => {
      named = err ? undefined : stats;
      settle();
    });
  });
}

/** open, fsync: the folder by its name (the close follows, off the caller's path). */
function openAndSync(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    open(dir, 'r', (openErr, fd) => {
      if (openErr) return reject(openErr);
      fsync(fd, (syncErr) => {
        if (syncErr) return close(fd, () => reject(syncErr));
        close(fd, () => undefined);
        resolve();
      });
    });
  });
}
