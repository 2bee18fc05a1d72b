import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { Log } from '../log.ts';
import { readGrowing, type Growth } from './growing.ts';

/** What the cache needs to know of an asset: who it is and what its bytes must be. */
export interface CacheItem {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  /** Hex sha256 when the release gives one. */
  readonly sha256: string | null;
  readonly updatedAt: string;
}

export type Fetch = (item: CacheItem, signal: AbortSignal) => Promise<Readable>;

/** An asset's bytes were not what the release said they are. */
export class CacheError extends Error {
  override name = 'CacheError';
  /** Trying again cannot help: the job that needs these bytes cannot run. */
  readonly permanent: boolean = false;
}

/** GitHub's bytes, complete, are not the ones its digest names: asking again gives the same bytes. */
class DigestMismatch extends CacheError {
  override readonly permanent = true;
}

interface Download extends Growth {
  readonly done: Promise<string>;
}

/**
 * Release assets on disk, each fetched at most once per run (and reused across
 * runs): keyed by their sha256 digest, so assets with the same bytes (one
 * image uploaded under a name per server) are one download and one file; by
 * id, size and update time when GitHub gives no digest. A file gets its final
 * name only once its size and sha256 are checked, so what is in the cache is
 * always right; while it downloads, readers follow the partial file as it
 * grows.
 */
export class AssetCache {
  readonly #dir: string;
  readonly #fetch: Fetch;
  readonly #log: Log;
  readonly #ready = new Map<string, Promise<boolean>>();
  /** Keys known to be complete and verified on disk: served without asking the file system first. */
  readonly #complete = new Set<string>();
  readonly #downloads = new Map<string, Download>();
  /** Assets whose bytes failed the digest check: refused for the rest of the run, never fetched again. */
  readonly #refused = new Map<string, CacheError>();
  readonly #abort = new AbortController();
  /** Downloads from GitHub that completed, per asset id. */
  readonly fetched = new Map<number, number>();

  constructor(dir: string, fetch: Fetch, log: Log) {
    this.#dir = dir;
    this.#fetch = fetch;
    this.#log = log;
  }

  /** A stream of bytes [start, end] of the asset, downloading it first if needed. */
  read(item: CacheItem, start: number, end: number): Readable {
    const key = cacheKey(item);
    const path = join(this.#dir, key);
    const refused = this.#refused.get(key);
    if (refused) {
      this.#log('cache', `${item.name}: refused: its bytes did not match the release's digest; not fetching it again`);
      return lazily(() => Promise.reject(refused));
    }
    if (this.#complete.has(key)) return lazily(() => this.#openComplete(key, path, item, start, end));
    const running = this.#downloads.get(key);
    if (running) return readGrowing([`${path}.part`, path], running, start, end);
    // Whether the file is complete is only known asynchronously; a small
    // pass-through keeps read() synchronous for the HTTP layer.
    return lazily(async () => {
      if (await this.#isReady(key, path, item.size)) return createReadStream(path, { start, end, highWaterMark: 256 * 1024 });
      const refusedMeanwhile = this.#refused.get(key);
      if (refusedMeanwhile) throw refusedMeanwhile;
      const download = this.#downloads.get(key) ?? this.#start(key, path, item);
      return readGrowing([`${path}.part`, path], download, start, end);
    });
  }

  /**
   * A file this cache made and checked, or, when it is gone (the cache was
   * deleted while dispatch runs: always safe), the asset fetched again.
   */
  async #openComplete(key: string, path: string, item: CacheItem, start: number, end: number): Promise<Readable> {
    try {
      const handle = await open(path, 'r');
      return handle.createReadStream({ start, end, highWaterMark: 256 * 1024 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.#complete.delete(key);
    this.#ready.delete(key);
    this.#log('cache', `${item.name}: no longer in the cache: fetching it again`);
    const download = this.#downloads.get(key) ?? this.#start(key, path, item);
    return readGrowing([`${path}.part`, path], download, start, end);
  }

  /** Find out now whether the asset is already on disk, so the first GET of it can be served as a plain file. */
  async check(item: CacheItem): Promise<void> {
    const key = cacheKey(item);
    await this.#isReady(key, join(this.#dir, key), item.size);
  }

  /** The complete, verified file of an asset, when that is known without waiting; else undefined (use `read`). */
  file(item: CacheItem): string | undefined {
    const key = cacheKey(item);
    return this.#complete.has(key) ? join(this.#dir, key) : undefined;
  }

  /** Stop downloads in flight. */
  close(): void {
    this.#abort.abort();
  }

  #isReady(key: string, path: string, size: number): Promise<boolean> {
    let ready = this.#ready.get(key);
    if (!ready) {
      ready = stat(path).then(
        (info) => {
          const complete = info.isFile() && info.size === size;
          if (complete) this.#complete.add(key);
          return complete;
        },
        () => false,
      );
      this.#ready.set(key, ready);
    }
    return ready;
  }

  #start(key: string, path: string, item: CacheItem): Download {
    let written = 0;
    let verified = false;
    let waiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
    let failure: Error | undefined;
    const wake = (err?: Error) => {
      const current = waiters;
      waiters = [];
      for (const w of current) (err ? w.reject(err) : w.resolve());
    };
    const partial = `${path}.part`;
    let created!: () => void;
    const createdPromise = new Promise<void>((resolve) => (created = resolve));
    const done = (async () => {
      await mkdir(this.#dir, { recursive: true });
      const handle = await open(partial, 'w');
      created();
      const hash = createHash('sha256');
      try {
        const body = await this.#fetch(item, this.#abort.signal);
        for await (const chunk of body as AsyncIterable<Buffer>) {
          if (written + chunk.byteLength > item.size) throw new CacheError(`${item.name}: GitHub sent more than the ${item.size} bytes the release lists`);
          hash.update(chunk);
          await handle.write(chunk, 0, chunk.byteLength, written);
          written += chunk.byteLength;
          wake();
        }
        if (written !== item.size) throw new CacheError(`${item.name}: GitHub sent ${written} of ${item.size} bytes`);
        const digest = hash.digest('hex');
        if (item.sha256 !== null && digest !== item.sha256) {
          throw new DigestMismatch(`${item.name}: sha256 ${digest} does not match the release's digest ${item.sha256}; not serving it`);
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(partial, path);
      return path;
    })();
    const download: Download = {
      // A download that fails before its file exists must not leave readers waiting.
      created: Promise.race([createdPromise, done.then(() => undefined)]),
      done,
      available: () => (verified ? written : Math.min(written, item.size - 1)),
      next: () => (failure ? Promise.reject(failure) : new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }))),
    };
    this.#downloads.set(key, download);
    done.then(
      () => {
        verified = true;
        this.#ready.set(key, Promise.resolve(true));
        this.#complete.add(key);
        this.#downloads.delete(key);
        this.fetched.set(item.id, (this.fetched.get(item.id) ?? 0) + 1);
        this.#log('cache', `${item.name}: downloaded and verified (${item.size} bytes${item.sha256 ? ', sha256 ok' : ''})`);
        wake();
      },
      (err: Error) => {
        failure = err;
        if (err instanceof DigestMismatch) this.#refused.set(key, err);
        this.#downloads.delete(key);
        this.#log('cache', `${item.name}: download failed: ${err.message}`);
        void unlink(partial).catch(() => undefined);
        wake(err);
      },
    );
    return download;
  }
}

export function cacheKey(item: CacheItem): string {
  // The digest names a file: only as the hex it should be, never a path.
  return item.sha256 !== null && /^[0-9a-f]{64}$/.test(item.sha256) ? `sha256-${item.sha256}` : `${item.id}-${item.size}-${item.updatedAt.replace(/[^0-9A-Za-z]/g, '')}`;
}

/** A Readable whose source is decided asynchronously. */
function lazily(make: () => Promise<Readable>): Readable {
  const out = new PassThrough({ highWaterMark: 256 * 1024 });
  make().then(
    (source) => {
      // The client may have gone while we looked: do not leave a file open.
      if (out.destroyed) {
        source.destroy();
        return;
      }
      source.on('error', (err) => out.destroy(err));
      out.on('close', () => source.destroy());
      source.pipe(out);
    },
    (err: Error) => out.destroy(err),
  );
  return out;
}
